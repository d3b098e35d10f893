package qemu

import (
	"os"
	"path/filepath"
	"strings"
)

// MCIMX6ULEVK is the NXP i.MX6UL evaluation kit, run by qemu-system-arm:
// one Cortex-A7, RAM at ARMRAMBase, the SoC's devices (ENET1 at
// 0x02188000) at their i.MX6UL addresses. Its Ethernet controllers are
// built into the SoC, so they are attached to netdevs with
// "-net", "nic,netdev=ID,macaddr=..." (the first such option is ENET1)
// rather than with -device.
const MCIMX6ULEVK = "mcimx6ul-evk"

// ARMBinary is the QEMU executable Start runs for MCIMX6ULEVK.
const ARMBinary = "qemu-system-arm"

const (
	// ARMRAMBase is where the i.MX6UL's DRAM (MMDC) window starts.
	ARMRAMBase = 0x80000000
	// ARMDMABase is where VM.DMA begins on MCIMX6ULEVK: above QEMU's boot
	// stub and boot tags (first KiBs of RAM) and the halting program it
	// loads at RAM+0x10000.
	ARMDMABase = ARMRAMBase + 1<<20
)

// armHalt is the program the Cortex-A7 runs: "wfi" then a branch back to
// it (A32 encodings, little-endian). QEMU loads a raw -kernel image at
// RAM+0x10000 and enters it from a stub that leaves IRQs and FIQs masked,
// so the wfi never wakes into a handler and the CPU touches nothing.
var armHalt = []byte{
	0x03, 0xf0, 0x20, 0xe3, // wfi
	0xfd, 0xff, 0xff, 0xea, // b .-4 (back to wfi)
}

// binaryFor is the QEMU executable for a machine and the Debian package
// that has it.
func binaryFor(machine string) (bin, pkg string) {
	if machine == MCIMX6ULEVK {
		return ARMBinary, "qemu-system-arm"
	}
	return Binary, "qemu-system-x86"
}

// machineOf is the machine type in a QEMU command line ("-machine
// TYPE,opts").
func machineOf(args []string) string {
	for i := 0; i+1 < len(args); i++ {
		if args[i] == "-machine" || args[i] == "-M" {
			m, _, _ := strings.Cut(args[i+1], ",")
			return m
		}
	}
	return ""
}

// haltArgs writes the machine's halting firmware into the VM's directory,
// sets where RAM and DMA memory sit, and returns the option loading it.
func (vm *VM) haltArgs(machine string) ([2]string, error) {
	if machine == MCIMX6ULEVK {
		vm.ramBase, vm.dmaBase = ARMRAMBase, ARMDMABase
		path := filepath.Join(vm.dir, "halt.img")
		return [2]string{"-kernel", path}, os.WriteFile(path, armHalt, 0o644)
	}
	path := filepath.Join(vm.dir, "halt.bin")
	return [2]string{"-bios", path}, os.WriteFile(path, haltFirmware(), 0o644)
}

// Executable is the QEMU executable for a whole-machine command line
// (qemu-system-arm when it selects MCIMX6ULEVK) and the Debian package
// that has it.
func Executable(args []string) (bin, pkg string) { return binaryFor(machineOf(args)) }
