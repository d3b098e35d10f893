//go:build tamago && amd64

package tamago

import (
	"io"
	"net/netip"
	"time"

	"github.com/tamadump/tamadump/board"
	"github.com/tamadump/tamadump/board/microvm"
	"github.com/tamadump/tamadump/drivers/bus"
	"github.com/tamadump/tamadump/netdump/elfcore"
)

// Machine is the TamaGo microvm board as a board.Machine.
type Machine struct {
	layout Layout
	boot   time.Duration
	net    microvm.Net
}

// New describes the board; the hardware was set up before package
// initialisation (Hwinit1).
func New() *Machine {
	return &Machine{layout: Info(), boot: SinceReset()}
}

func (t *Machine) Name() string            { return "tamago" }
func (t *Machine) Arch() *elfcore.Arch     { return &elfcore.AMD64 }
func (t *Machine) Settings() []string      { return nil } // build-time only
func (t *Machine) BootTime() time.Duration { return t.boot }
func (t *Machine) MemoryMB() uint64        { return (t.layout.RAMSize + t.layout.DMASize) >> 20 }
func (t *Machine) Console() io.Writer      { return Console }
func (t *Machine) ConsoleInput() io.Reader { return Console }
func (t *Machine) MsgBuf(dst []byte) int   { return MsgBuf(dst) }
func (t *Machine) Halt(code int)           { Halt(code) }
func (t *Machine) Reboot()                 { Reboot() }

// Ethernet is the microvm NIC, its rings and buffers in the DMA region.
func (t *Machine) Ethernet(want string) (board.Ethernet, error) {
	return t.net.Ethernet(bus.DMA{Mem: t.layout.DMA, Addr: t.layout.DMAStart}, want)
}

func (t *Machine) StartNetwork(addr netip.Prefix, gw netip.Addr) error {
	return t.net.StartNetwork(addr, gw)
}

// Memory is the Go runtime's RAM (text, data, heap, stacks) and the DMA
// region, identity-mapped: virtual = physical.
func (t *Machine) Memory(dst []elfcore.Segment) ([]elfcore.Segment, error) {
	l := t.layout
	return append(dst,
		elfcore.Segment{Phys: l.RAMStart, Virt: l.RAMStart, Data: unsafeRAM(l.RAMStart, l.RAMSize)},
		elfcore.Segment{Phys: l.DMAStart, Virt: l.DMAStart, Data: l.DMA},
	), nil
}

// OnCrash hands fn the crash, run on the board's crash stack with the
// scheduler stopped (see the package-level OnCrash).
func (t *Machine) OnCrash(fn func(*board.Crash)) {
	OnCrash(func(c *Crash) { fn(&c.Crash) })
}
