package boot

import "strconv"

// TamaGoArgs returns the qemu-system-x86_64 arguments for the TamaGo board
// (board/tamago): a single-CPU microvm with the i8254 PIT (TSC
// calibration), RTC, no legacy PIC, isa-debug-exit at 0xf4 (Halt) and no
// reboot (a triple fault, i.e. Reboot, ends QEMU). The caller adds serial
// (-serial ...), network and accelerator (-accel kvm) options.
func TamaGoArgs(kernel string, ramMiB int) []string {
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
