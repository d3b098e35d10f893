// Package microvm finds and starts the network interface of QEMU's
// microvm machine, whichever QEMU was given: virtio-net on virtio-mmio
// (version 1 or 2, in the slots that fill from the top), or with pcie=on
// an e1000 or a virtio-net-pci behind the ECAM (qemu-devices.md §3). Both
// boards use it; register access comes through bus.MMIO so the tests
// drive QEMU's real devices through qtest.
package microvm

import (
	"errors"
	"fmt"
	"strings"

	"github.com/tamadump/tamadump/debugnet"
	"github.com/tamadump/tamadump/drivers/bus"
	"github.com/tamadump/tamadump/drivers/e1000"
	"github.com/tamadump/tamadump/drivers/pci"
	"github.com/tamadump/tamadump/drivers/virtio"
	"github.com/tamadump/tamadump/mbufpool"
)

// Machine facts (qemu-devices.md §3).
const (
	MMIOBase  = 0xfeb00000
	MMIOSlots = 24 // with ACPI, the default
	PCIMemLo  = 0xc0000000
	PCIMemHi  = 0xe0000000
	BufSize   = 2048
	// queueSize is each virtqueue's entries, as many as QEMU's
	// virtio-net has: a ring of 64 was full whenever QEMU's transmit fell
	// behind (the stock-Go image's blast: 37-94 MB/s against 170 with 256).
	queueSize = 256
)

// NIC is a started network interface.
type NIC interface {
	debugnet.NIC
	// Reset brings the device back to a working state from any state,
	// without allocating: the panic path calls it first.
	Reset() error
	LinkUp() bool
}

// Found is the interface found on the machine.
type Found struct {
	NIC  NIC
	Name string // FreeBSD-style: vtnet0, em0
	Desc string // what and where, for the boot log
	Pool *mbufpool.Pool
}

// ErrNoNIC is returned when the machine has no supported NIC.
var ErrNoNIC = errors.New("microvm: no supported network interface (virtio-net-device, virtio-net-pci or e1000)")

// Find looks for the NIC want ("" for the first found, else vtnet0 or
// em0, or a kind: virtio-mmio, virtio-pci, e1000), starts its driver with
// rings and buffers carved from dma, and returns it.
func Find(m bus.MMIO, dma bus.DMA, want string) (Found, error) {
	var cands []candidate
	for slot := MMIOSlots - 1; slot >= 0; slot-- {
		base := uint64(MMIOBase) + uint64(slot*virtio.MMIOSlotSize)
		if m.Read32(base) == 0x74726976 && m.Read32(base+8) == 1 { // "virt", network card
			v := m.Read32(base + 4)
			cands = append(cands, candidate{kind: "virtio-mmio", name: "vtnet", desc: fmt.Sprintf("virtio-net on virtio-mmio v%d at %#x", v, base), start: func(r bus.DMA, p *mbufpool.Pool) (NIC, error) {
				return virtio.NewMMIO(m, base, r, p, virtio.Options{QueueSize: queueSize})
			}})
		}
	}
	ecam := pci.NewECAM(m, pci.MicroVMECAM)
	// Without pcie=on nothing decodes the ECAM window: reads give all ones.
	if m.Read32(pci.MicroVMECAM) != 0xffffffff {
		alloc := pci.Allocator{Mem: pci.Window{Base: PCIMemLo, End: PCIMemHi}}
		for _, d := range pci.Enumerate(ecam) {
			switch {
			case d.Vendor == e1000.VendorID && d.ID == e1000.DeviceID:
				d := d
				cands = append(cands, candidate{kind: "e1000", name: "em", desc: "e1000 (82540EM) at PCI " + d.Addr.String(), start: func(r bus.DMA, p *mbufpool.Pool) (NIC, error) {
					bars, err := alloc.Assign(d)
					if err != nil {
						return nil, err
					}
					bar0, _ := pci.FindBAR(bars, 0)
					d.Enable(pci.CmdMemory | pci.CmdBusMaster | pci.CmdIntxDisable)
					return e1000.New(m, bar0.Addr, r, p)
				}})
			case d.Vendor == virtio.PCIVendor && (d.ID == virtio.PCIDeviceModern || d.ID == virtio.PCIDeviceTransitional):
				d := d
				cands = append(cands, candidate{kind: "virtio-pci", name: "vtnet", desc: "virtio-net-pci at PCI " + d.Addr.String(), start: func(r bus.DMA, p *mbufpool.Pool) (NIC, error) {
					bars, err := alloc.Assign(d)
					if err != nil {
						return nil, err
					}
					regs, err := virtio.FindPCIRegs(d, bars)
					if err != nil {
						return nil, err
					}
					d.Enable(pci.CmdMemory | pci.CmdBusMaster | pci.CmdIntxDisable)
					return virtio.NewPCI(m, regs, r, p, virtio.Options{QueueSize: queueSize})
				}})
			}
		}
	}
	// Unit numbers per driver, in discovery order.
	units := map[string]int{}
	var names []string
	for i := range cands {
		c := &cands[i]
		base := c.name
		c.name = fmt.Sprint(base, units[base])
		units[base]++
		names = append(names, c.name)
	}
	for _, c := range cands {
		if want != "" && want != c.name && want != c.kind {
			continue
		}
		rings, rest, err := dma.Carve(virtio.RingBytes(queueSize), 4096)
		if err != nil {
			return Found{}, err
		}
		pool, err := mbufpool.New(rest, BufSize)
		if err != nil {
			return Found{}, err
		}
		nic, err := c.start(rings, pool)
		if err != nil {
			return Found{}, fmt.Errorf("%s (%s): %w", c.name, c.desc, err)
		}
		return Found{NIC: nic, Name: c.name, Desc: c.desc, Pool: pool}, nil
	}
	if want != "" && len(names) > 0 {
		return Found{}, fmt.Errorf("microvm: no interface %q; have %s", want, strings.Join(names, ", "))
	}
	return Found{}, ErrNoNIC
}

type candidate struct {
	kind, name, desc string
	start            func(rings bus.DMA, pool *mbufpool.Pool) (NIC, error)
}
