//go:build tamago && arm

package main

import (
	"io"
	"net/netip"
	"time"

	"github.com/tamadump/tamadump/board"
	"github.com/tamadump/tamadump/board/imx6ul"
	"github.com/tamadump/tamadump/board/microvm"
	"github.com/tamadump/tamadump/drivers/bus"
	"github.com/tamadump/tamadump/netdump/elfcore"
)

// imxMachine is the i.MX6UL board: its Ethernet is the SoC's own, run by
// imx-enet in normal operation and taken over by drivers/imxenet after a
// crash.
type imxMachine struct {
	boot  time.Duration
	eth   *imx6ul.Ethernet
	crash *imx6ul.Crash
	msg   [256]byte
}

func newMachine() machine { return &imxMachine{boot: imx6ul.SinceReset()} }

func (x *imxMachine) Name() string            { return "imx6ul" }
func (x *imxMachine) Hostname() string        { return hostname }
func (x *imxMachine) Settings() []string      { return nil } // build-time only
func (x *imxMachine) BootTime() time.Duration { return x.boot }
func (x *imxMachine) MemoryMB() uint64        { return imx6ul.MemoryMB() }
func (x *imxMachine) Console() io.Writer      { return imx6ul.Console }
func (x *imxMachine) ConsoleInput() io.Reader { return imx6ul.Console }
func (x *imxMachine) MsgBuf(dst []byte) int   { return imx6ul.MsgBuf(dst) }
func (x *imxMachine) Halt(code int)           { imx6ul.Halt(code) }
func (x *imxMachine) Reboot()                 { imx6ul.Reboot() }
func (x *imxMachine) DMA() bus.DMA            { return imx6ul.DMA() }

// Mallocs cannot be read on the crash stack (runtime/metrics takes a
// semaphore), and need not be: the board runs the crash function with
// the runtime dying, where any allocation throws.
func (x *imxMachine) Mallocs() (uint64, bool) { return 0, false }

// Memory is RAM, the DMA region and OCRAM, identity-mapped.
func (x *imxMachine) Memory(dst []elfcore.Segment) ([]elfcore.Segment, error) {
	if cap(dst)-len(dst) < 3 {
		return dst, board.ErrPartialMemory
	}
	return imx6ul.Memory(dst), nil
}

// OnCrash hands fn to the board, which runs it on a stack of its own with
// the scheduler stopped.
func (x *imxMachine) OnCrash(fn func(*board.Crash)) {
	imx6ul.OnCrash(func(c *imx6ul.Crash) {
		x.crash = c
		fn(&c.Crash)
	})
}

// FindNIC is the board's Ethernet, with the crash-time driver prepared
// on rings and buffers from the DMA region.
func (x *imxMachine) FindNIC() (microvm.Found, error) {
	eth, err := imx6ul.NewEthernet(imx6ul.DMA())
	if err != nil {
		return microvm.Found{}, err
	}
	x.eth = eth
	return microvm.Found{NIC: eth.NIC, Name: eth.Name, Desc: eth.Desc}, nil
}

// StartNetwork brings the Ethernet up under imx-enet with gVisor's stack:
// ping, and UDP echo on port 7.
func (x *imxMachine) StartNetwork(addr netip.Prefix, gw netip.Addr) error {
	return x.eth.Start(addr, gw)
}

// FaultMessage describes the exception being handled ("data abort at pc
// 0x80012345: read from 0x18, DFSR 0x5 (translation fault, section)")
// without allocating.
func (x *imxMachine) FaultMessage() []byte { return x.crash.Message(x.msg[:0]) }
