package imx6ul

import "strconv"

// Defaults of the memory layout (layout_arm.s; see the package
// documentation for overriding them at build time).
const (
	DefaultRAMStart = 0x80000000
	DefaultRAMSize  = 0x03a00000
	DefaultDMASize  = 0x00200000
)

// Build settings for images using this board, for the TamaGo toolchain
// (GOOS=tamago GOOSPKG=github.com/usbarmory/tamago GOARCH=arm GOARM=7):
// this package provides runtime/goos.RamSize (linkramsize), and the text
// starts 64 KiB into RAM, after tamago's vector and page tables.
const (
	BuildTags   = "linkramsize"
	TextStart   = DefaultRAMStart + 0x10000
	LinkerFlags = "-T 0x80010000 -R 0x1000"
)

// Halt codes used by the crash path (under QEMU, its exit status).
const (
	ExitCrashed = 3 // crash with no OnCrash function, or it returned
	ExitNested  = 4 // failure while the OnCrash function ran
	ExitHard    = 6 // failure with no usable Go context (early boot, 3rd failure)
)

// MinRAMMiB is the smallest guest memory (-m) for the default layout.
const MinRAMMiB = (DefaultRAMSize + DefaultDMASize + 1<<20 - 1) >> 20

// QEMUArgs returns the qemu-system-arm arguments for this board: QEMU's
// i.MX6UL EVK with its Cortex-A7, ramMiB of DRAM, semihosting (Halt exits
// QEMU with the halt code) and no reboot (Reboot ends QEMU). The caller
// adds the serial ports (the first is UART1, the second UART2) and the
// network (the first -net nic,netdev=... is ENET1, the second ENET2).
func QEMUArgs(kernel string, ramMiB int) []string {
	return []string{
		"-machine", "mcimx6ul-evk",
		"-cpu", "cortex-a7",
		"-m", strconv.Itoa(ramMiB) + "M",
		"-kernel", kernel,
		"-semihosting",
		"-no-reboot",
		"-display", "none",
		"-monitor", "none",
	}
}
