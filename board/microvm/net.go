package microvm

import (
	"net/netip"
	"sync"

	"github.com/tamadump/tamadump/board"
	"github.com/tamadump/tamadump/board/netstack"
	"github.com/tamadump/tamadump/drivers/bus"
)

// Net is a microvm board's network: the NIC Find started, which gVisor's
// stack (board/netstack) drives in normal operation. Both amd64 boards
// keep one.
type Net struct {
	nic NIC
	mu  sync.Mutex // the driver, between the stack's goroutines and a lender
}

// Ethernet finds and starts the NIC want (see Find) on rings and buffers
// carved from dma.
func (n *Net) Ethernet(dma bus.DMA, want string) (board.Ethernet, error) {
	f, err := Find(bus.Direct{}, dma, want)
	if err != nil {
		return board.Ethernet{}, err
	}
	n.nic = f.NIC
	return board.Ethernet{NIC: f.NIC, Name: f.Name, Desc: f.Desc, Lend: &n.mu}, nil
}

// StartNetwork serves ARP, ping and UDP echo at addr on the NIC.
func (n *Net) StartNetwork(addr netip.Prefix, gw netip.Addr) error {
	if n.nic == nil {
		return ErrNoNIC
	}
	return netstack.Serve(n.nic, &n.mu, addr, gw)
}
