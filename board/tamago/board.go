//go:build tamago && amd64

package tamago

import (
	"runtime"
	"unsafe"

	"github.com/tamadump/tamadump/drivers/bus"
	"github.com/usbarmory/tamago/amd64"
	"github.com/usbarmory/tamago/soc/intel/ioapic"
	"github.com/usbarmory/tamago/soc/intel/uart"
)

// Peripheral addresses of QEMU microvm.
const (
	COM1         = 0x3f8
	IOAPIC0_BASE = 0xfec00000
	IOAPIC1_BASE = 0xfec10000

	// VirtIO over MMIO: QEMU microvm places virtio-net at this slot.
	VIRTIO_MMIO_BASE = 0xfeb00000
	VIRTIO_NET0_BASE = VIRTIO_MMIO_BASE + 0x2e00
	VIRTIO_NET0_IRQ  = 47

	// -device isa-debug-exit,iobase=0xf4,iosize=0x04
	debugExitPort = 0xf4
)

var (
	// AMD64 is the bootstrap (and only) processor.
	AMD64 = &amd64.CPU{
		// GetTime() is used before calibration: count TSC ticks as ns.
		TimerMultiplier: 1,
	}

	IOAPIC0 = &ioapic.IOAPIC{Index: 0, Base: IOAPIC0_BASE, GSIBase: 0}
	IOAPIC1 = &ioapic.IOAPIC{Index: 1, Base: IOAPIC1_BASE, GSIBase: 24}

	// UART0 is COM1, the console.
	UART0 = &uart.UART{Index: 1, Base: COM1}
)

// Memory layout (set in board_amd64.s, see doc.go).
var ramStart, ramSize, dmaSize = layout()

// pio is x86 port I/O (PIT, RTC, isa-debug-exit), as the drivers use it.
var pio bus.Direct

// Layout describes the guest memory as used by this board.
type Layout struct {
	// RAMStart/RAMSize is the memory the Go runtime owns (text, data, bss,
	// heap, goroutine and system stacks): the region to dump.
	RAMStart, RAMSize uint64
	// Text and data (data+bss) regions of the image, inside RAM.
	TextStart, TextEnd uint64
	DataStart, DataEnd uint64
	// DMAStart/DMASize is physical memory right above RAM, never touched
	// by the Go heap; physical = virtual = bus address (identity mapping,
	// no IOMMU).
	DMAStart, DMASize uint64
	// DMA views the DMA region.
	DMA []byte
}

// Info returns the memory layout.
func Info() Layout {
	l := Layout{
		RAMStart: ramStart,
		RAMSize:  ramSize,
		DMAStart: ramStart + ramSize,
		DMASize:  dmaSize,
	}
	l.TextStart, l.TextEnd = runtime.TextRegion()
	l.DataStart, l.DataEnd = runtime.DataRegion()
	l.DMA = unsafeRAM(l.DMAStart, l.DMASize)
	return l
}

// physPtr turns a physical address (identity mapped, outside the Go heap)
// into a pointer; the indirection keeps vet's unsafeptr check meaningful
// for the rest of the code.
func physPtr(addr uintptr) unsafe.Pointer {
	return *(*unsafe.Pointer)(unsafe.Pointer(&addr))
}

// defined in board_amd64.s
func layout() (ramStart, ramSize, dmaSize uint64)
func rdtsc() uint64
func rdmsr(msr uint32) uint64
func haltLoop()

// hwinit1 runs right after the runtime scheduler is set up, on g0, before
// any package init.
//
//go:linkname hwinit1 runtime/goos.Hwinit1
func hwinit1() {
	hookTSC = rdtsc()

	AMD64.Init()
	IOAPIC0.Init()
	IOAPIC1.Init()
	UART0.Init()

	calibrate()
	setWallClock()
	initCrash()
}

func init() {
	// loads the IDT (tamago's handlers), then our vectors 0-31 replace
	// them; 32-255 stay tamago's for ServiceInterrupts.
	AMD64.EnableExceptions()
	installExceptionHandlers()
	checkRuntimeOffsets()
}

// Halt stops the machine: with isa-debug-exit present QEMU exits with status
// (code<<1)|1, otherwise the CPU halts forever.
func Halt(code int) {
	pio.Out32(debugExitPort, uint32(code))
	haltLoop()
}

// Reboot resets the machine with a triple fault, the microvm reset method
// (with -no-reboot QEMU exits instead, status 0).
func Reboot() {
	amd64.Fault()
}

// Printk goes to the UART and the message buffer.
//
//go:linkname printk runtime/goos.Printk
func printk(c byte) {
	UART0.Tx(c)
	cons.Log(c)
}

//go:linkname nanotime runtime/goos.Nanotime
func nanotime() int64 {
	return AMD64.GetTime()
}

// unsafeRAM views n bytes of identity-mapped memory at addr.
func unsafeRAM(addr, n uint64) []byte {
	return unsafe.Slice((*byte)(physPtr(uintptr(addr))), n)
}
