//go:build tamago && arm

package imx6ul

import (
	"errors"
	"fmt"
	"io"
	"net/netip"
	"time"

	"github.com/tamadump/tamadump/board"
	"github.com/tamadump/tamadump/netdump/elfcore"
)

// Machine is the board as the image sees it. Its Ethernet is the SoC's
// own: imx-enet runs it in normal operation (StartNetwork), and the
// crash-time driver, prepared at boot (Ethernet), takes it over.
type Machine struct {
	boot time.Duration
	eth  *Ethernet
}

// New describes the board; the hardware was set up before package
// initialisation (Hwinit1).
func New() *Machine { return &Machine{boot: SinceReset()} }

func (x *Machine) Name() string            { return "imx6ul" }
func (x *Machine) Arch() *elfcore.Arch     { return Arch() }
func (x *Machine) Settings() []string      { return nil } // build-time only
func (x *Machine) BootTime() time.Duration { return x.boot }
func (x *Machine) MemoryMB() uint64        { return MemoryMB() }
func (x *Machine) Console() io.Writer      { return Console }
func (x *Machine) ConsoleInput() io.Reader { return Console }
func (x *Machine) MsgBuf(dst []byte) int   { return MsgBuf(dst) }
func (x *Machine) Halt(code int)           { Halt(code) }
func (x *Machine) Reboot()                 { Reboot() }

// Memory is RAM, the DMA region and OCRAM, identity-mapped.
func (x *Machine) Memory(dst []elfcore.Segment) ([]elfcore.Segment, error) {
	if cap(dst)-len(dst) < 3 {
		return dst, board.ErrPartialMemory
	}
	return Memory(dst), nil
}

// OnCrash hands fn the crash, run on the board's crash stack with the
// scheduler stopped (see the package-level OnCrash).
func (x *Machine) OnCrash(fn func(*board.Crash)) {
	OnCrash(func(c *Crash) { fn(&c.Crash) })
}

// Ethernet is the board's Ethernet with the crash-time driver prepared on
// rings and buffers from the DMA region (want: "" or its name). It cannot
// be lent: imx-enet owns the controller until a crash.
func (x *Machine) Ethernet(want string) (board.Ethernet, error) {
	eth, err := NewEthernet(DMA())
	if err != nil {
		return board.Ethernet{}, err
	}
	if want != "" && want != eth.Name {
		return board.Ethernet{}, fmt.Errorf("imx6ul board: no interface %q; have %s", want, eth.Name)
	}
	x.eth = eth
	return board.Ethernet{NIC: eth.NIC, Name: eth.Name, Desc: eth.Desc}, nil
}

// StartNetwork brings the Ethernet up under imx-enet with gVisor's stack:
// ping, and UDP echo on port 7.
func (x *Machine) StartNetwork(addr netip.Prefix, gw netip.Addr) error {
	if x.eth == nil {
		return errNoEthernet
	}
	return x.eth.Start(addr, gw)
}

var errNoEthernet = errors.New("imx6ul board: the Ethernet was not started")
