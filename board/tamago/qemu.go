package tamago

import "strconv"

// Defaults of the memory layout (board_amd64.s; see the package
// documentation for overriding them at build time).
const (
	DefaultRAMStart = 0x00400000
	DefaultRAMSize  = 0x03400000
	DefaultDMASize  = 0x00200000
)

// Build settings for images using this board, for the TamaGo toolchain:
//
//	GOOS=tamago GOOSPKG=github.com/usbarmory/tamago GOARCH=amd64 \
//	  $TAMAGO build -tags $BuildTags -trimpath -ldflags "$LinkerFlags" .
const (
	BuildTags   = "linkramstart"
	LinkerFlags = "-T 0x00410000 -R 0x1000" // text at DefaultRAMStart+0x10000
)

// Halt codes used by the crash path (QEMU exit status = code<<1 | 1).
const (
	ExitCrashed = 3 // crash with no OnCrash function, or it returned
	ExitNested  = 4 // failure while the OnCrash function ran
	ExitHard    = 6 // failure with no usable Go context (early boot, 3rd failure)
)

// MinRAMMiB is the smallest guest memory (-m) for the default layout.
const MinRAMMiB = (DefaultRAMStart + DefaultRAMSize + DefaultDMASize + 1<<20 - 1) >> 20

// QEMUArgs returns the qemu-system-x86_64 arguments for this board: a
// single-CPU microvm with the i8254 PIT (TSC calibration), RTC, no legacy
// PIC, isa-debug-exit at 0xf4 (Halt) and no reboot (a triple fault, i.e.
// Reboot, ends QEMU). The caller adds serial (-serial ...), network and
// accelerator (-accel kvm) options.
func QEMUArgs(kernel string, ramMiB int) []string {
	return []string{
		"-machine", "microvm,x-option-roms=on,pit=on,pic=off,rtc=on,pcie=on",
		"-smp", "1",
		"-cpu", "max",
		"-m", strconv.Itoa(ramMiB) + "M",
		"-kernel", kernel,
		"-no-reboot",
		"-display", "none",
		"-monitor", "none",
		"-device", "isa-debug-exit,iobase=0xf4,iosize=0x04",
	}
}
