//go:build tamago && amd64

package main

import (
	"io"
	"time"

	"github.com/tamadump/tamadump/board"
	"github.com/tamadump/tamadump/board/tamago"
	"github.com/tamadump/tamadump/drivers/bus"
	"github.com/tamadump/tamadump/netdump/elfcore"
)

// tamagoMachine is the TamaGo microvm board.
type tamagoMachine struct {
	layout tamago.Layout
	bc     board.Crash
	boot   time.Duration
}

func newMachine() machine {
	return &tamagoMachine{layout: tamago.Info(), boot: tamago.SinceReset()}
}

func (t *tamagoMachine) Name() string            { return "tamago" }
func (t *tamagoMachine) Hostname() string        { return hostname }
func (t *tamagoMachine) Settings() []string      { return nil } // build-time only
func (t *tamagoMachine) BootTime() time.Duration { return t.boot }
func (t *tamagoMachine) MemoryMB() uint64        { return (t.layout.RAMSize + t.layout.DMASize) >> 20 }
func (t *tamagoMachine) Console() io.Writer      { return tamago.Console }
func (t *tamagoMachine) ConsoleInput() io.Reader { return tamago.Console }
func (t *tamagoMachine) MsgBuf(dst []byte) int   { return tamago.MsgBuf(dst) }
func (t *tamagoMachine) Halt(code int)           { tamago.Halt(code) }
func (t *tamagoMachine) Reboot()                 { tamago.Reboot() }
func (t *tamagoMachine) DMA() bus.DMA {
	return bus.DMA{Mem: t.layout.DMA, Addr: t.layout.DMAStart}
}

// Mallocs cannot be read on the crash stack (runtime/metrics takes a
// semaphore), and need not be: the board runs the crash function with
// the runtime dying, where any allocation throws.
func (t *tamagoMachine) Mallocs() (uint64, bool) { return 0, false }

// Memory is the Go runtime's RAM (text, data, heap, stacks) and the DMA
// region, identity-mapped: virtual = physical.
func (t *tamagoMachine) Memory(dst []elfcore.Segment) ([]elfcore.Segment, error) {
	l := t.layout
	return append(dst,
		elfcore.Segment{Phys: l.RAMStart, Virt: l.RAMStart, Data: phys(l.RAMStart, l.RAMSize)},
		elfcore.Segment{Phys: l.DMAStart, Virt: l.DMAStart, Data: l.DMA},
	), nil
}

// OnCrash hands fn to the board, which runs it on a stack of its own
// with the scheduler stopped.
func (t *tamagoMachine) OnCrash(fn func(*board.Crash)) {
	tamago.OnCrash(func(c *tamago.Crash) {
		t.bc = board.Crash{Reason: board.Panic, Code: c.Code, Addr: c.CR2, Regs: c.Regs}
		if c.Reason == tamago.ReasonException {
			t.bc.Reason = board.Fault
		}
		fn(&t.bc)
	})
}
