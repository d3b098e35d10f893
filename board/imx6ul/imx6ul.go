//go:build tamago && arm

package imx6ul

import (
	"runtime"
	"time"
	"unsafe"

	"github.com/tamadump/tamadump/drivers/bus"
	"github.com/tamadump/tamadump/netdump/elfcore"
	"github.com/usbarmory/tamago/soc/nxp/imx6ul"
)

// SoC facts (i.MX6UL reference manual; tamago's soc/nxp/imx6ul).
const (
	RAMStart   = imx6ul.MMDC_BASE // DRAM window; tamago's RamStart
	OCRAMStart = imx6ul.OCRAM_START
	OCRAMSize  = imx6ul.OCRAM_SIZE
	section    = 1 << 20 // the MMU's first-level mapping unit
)

// Layout is where the board puts things.
type Layout struct {
	// RAMStart/RAMSize is the memory the Go runtime owns (tamago's
	// vector table, page tables and exception stacks in its first 64
	// KiB, then text, data, bss, heap and stacks): the region to dump.
	RAMStart, RAMSize uint64
	// Text and data (data+bss) regions of the image, inside RAM.
	TextStart, TextEnd uint64
	DataStart, DataEnd uint64
	// DMAStart/DMASize is DRAM right above RAM, never touched by the Go
	// heap and mapped uncached (see mapDMA); physical = virtual = bus
	// address.
	DMAStart, DMASize uint64
	// DMA views the DMA region.
	DMA []byte
}

// Info returns the memory layout.
func Info() Layout {
	ramSize, dmaSize := layout()
	l := Layout{
		RAMStart: RAMStart,
		RAMSize:  uint64(ramSize),
		DMAStart: RAMStart + uint64(ramSize),
		DMASize:  uint64(dmaSize),
	}
	ts, te := runtime.TextRegion()
	ds, de := runtime.DataRegion()
	l.TextStart, l.TextEnd, l.DataStart, l.DataEnd = uint64(ts), uint64(te), uint64(ds), uint64(de)
	l.DMA = phys(l.DMAStart, l.DMASize)
	return l
}

// DMA is the reserved DMA region, for rings and buffer pools.
func DMA() bus.DMA {
	l := Info()
	return bus.DMA{Mem: l.DMA, Addr: l.DMAStart}
}

// Memory appends the memory to dump to dst: the Go runtime's RAM, the DMA
// region (rings and buffers of the crash-time driver) and OCRAM (tamago's
// DMA region: imx-enet's rings and frames in flight at the crash), all
// identity-mapped. It does not allocate when dst has room for three.
func Memory(dst []elfcore.Segment) []elfcore.Segment {
	l := Info()
	return append(dst,
		elfcore.Segment{Phys: l.RAMStart, Virt: l.RAMStart, Data: phys(l.RAMStart, l.RAMSize)},
		elfcore.Segment{Phys: l.DMAStart, Virt: l.DMAStart, Data: l.DMA},
		elfcore.Segment{Phys: OCRAMStart, Virt: OCRAMStart, Data: phys(OCRAMStart, OCRAMSize)},
	)
}

// MemoryMB is the dumped memory in MiB.
func MemoryMB() uint64 {
	l := Info()
	return (l.RAMSize + l.DMASize + OCRAMSize) >> 20
}

// Arch is the machine for the core and the kernel dump header.
func Arch() *elfcore.Arch { return &elfcore.ARM }

// phys views identity-mapped physical memory outside the Go heap.
func phys(addr, n uint64) []byte {
	return unsafe.Slice((*byte)(ptr(uintptr(addr))), n)
}

// ptr turns a physical address (identity mapped, outside the Go heap)
// into a pointer; the indirection keeps vet's unsafeptr check meaningful
// for the rest of the code.
func ptr(addr uintptr) unsafe.Pointer {
	return *(*unsafe.Pointer)(unsafe.Pointer(&addr))
}

// layout is the memory layout (layout_arm.s; see the package
// documentation). It is code, not initialised data: Hwinit1 runs before
// package initialisation.
func layout() (ramSize, dmaSize uint32)

// hookCount is the generic timer's count when the board's first hook ran.
var hookCount uint64

// hwinit1 runs right after the runtime scheduler is set up, on g0, before
// any package init. imx6ul.Init sets up the core (vector table, MMU with
// caches, generic timers); then the DMA region is remapped uncached, the
// console started and the crash path armed.
//
//go:linkname hwinit1 runtime/goos.Hwinit1
func hwinit1() {
	imx6ul.Init()
	hookCount = imx6ul.ARM.Counter()
	consoleUART().Init()
	mapDMA()
	modelInit()
	initCrash()
}

// SinceReset is the generic timer's count as a duration. Under QEMU the
// counter starts with the machine, so this covers loading and runtime
// start-up; on hardware tamago starts the system counter in Init.
func SinceReset() time.Duration {
	return time.Duration(float64(imx6ul.ARM.Counter()) * imx6ul.ARM.TimerMultiplier)
}

// HookAt is SinceReset as it was when the board's first hook ran.
func HookAt() time.Duration {
	return time.Duration(float64(hookCount) * imx6ul.ARM.TimerMultiplier)
}

// Emulated reports whether the SoC is QEMU's (tamago tells from the
// silicon revision).
func Emulated() bool { return !imx6ul.Native }

// Halt stops the machine: under QEMU (started with -semihosting) it exits
// with code as its status; on hardware, or if the semihosting call
// returns, the core waits for interrupts forever with interrupts masked.
func Halt(code int) {
	haltCode(int32(code))
}

// Reboot resets the board the way it is wired for it (see reboot; QEMU
// resets the machine, or exits with -no-reboot), and halts if that does
// not happen.
func Reboot() {
	reboot()
	haltCode(ExitHard)
}

// spin waits 50 ms without the scheduler.
func spin() {
	for t := imx6ul.ARM.GetTime() + 50e6; imx6ul.ARM.GetTime() < t; {
	}
}

// defined in crash_arm.s
func haltCode(code int32)
