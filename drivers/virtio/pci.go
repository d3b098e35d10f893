package virtio

import (
	"fmt"

	"github.com/tamadump/tamadump/drivers/bus"
	"github.com/tamadump/tamadump/drivers/pci"
	"github.com/tamadump/tamadump/mbufpool"
)

// PCI identity of virtio-net functions.
const (
	PCIVendor             = 0x1af4
	PCIDeviceTransitional = 0x1000 // legacy I/O BAR0 and modern capabilities
	PCIDeviceModern       = 0x1041 // modern capabilities only
)

// Modern common configuration (virtio 1.x §4.1.4.3), offsets from the
// COMMON capability's address.
const (
	commonDeviceFeatSel  = 0
	commonDeviceFeatures = 4
	commonDriverFeatSel  = 8
	commonDriverFeatures = 12
	commonNumQueues      = 18
	commonStatus         = 20
	commonConfigGen      = 21
	commonQueueSelect    = 22
	commonQueueSize      = 24
	commonQueueEnable    = 28
	commonQueueNotifyOff = 30
	commonQueueDesc      = 32 // 64 bits as two 32-bit halves
	commonQueueDriver    = 40
	commonQueueDevice    = 48
	commonMinLen         = 56
)

// Vendor capability cfg_type values.
const (
	capCommon = 1
	capNotify = 2
	capISR    = 3 // ISR status: a polled driver ignores it
	capDevice = 4
)

// Legacy virtio-pci I/O registers (virtio 1.x §4.1.4.8).
const (
	legacyDeviceFeatures = 0x00
	legacyDriverFeatures = 0x04
	legacyQueuePFN       = 0x08
	legacyQueueSize      = 0x0c
	legacyQueueSelect    = 0x0e
	legacyQueueNotify    = 0x10
	legacyStatus         = 0x12
	legacyConfig         = 0x14 // 0x18 with MSI-X enabled: LegacyIOBase turns it off
)

// PCIRegs are the addresses (in the mapped memory BARs) of a modern
// virtio-pci function's register blocks.
type PCIRegs struct {
	Common, Notify, Device uint64
	NotifyMultiplier       uint32
}

// FindPCIRegs walks d's vendor capabilities for the common, notify and
// device configuration blocks, taking the first of each type as the
// specification asks. bars are d's BARs with their assigned addresses.
// Memory decoding and bus mastering are still the caller's to enable.
func FindPCIRegs(d pci.Device, bars []pci.BAR) (PCIRegs, error) {
	var r PCIRegs
	var found [capDevice + 1]bool
	for _, c := range d.Caps() {
		if c.ID != pci.CapVendor || d.Read8(c.Off+2) < 16 {
			continue
		}
		typ := d.Read8(c.Off + 3)
		if typ < capCommon || typ > capDevice || typ == capISR || found[typ] {
			continue
		}
		b, ok := pci.FindBAR(bars, int(d.Read8(c.Off+4)))
		if !ok || b.IO || b.Addr == 0 {
			continue
		}
		off, length := uint64(d.Read32(c.Off+8)), uint64(d.Read32(c.Off+12))
		if off+length > b.Size {
			return r, fmt.Errorf("virtio: %v: capability at %#x overruns %v", d.Addr, c.Off, b)
		}
		addr := b.Addr + off
		switch typ {
		case capCommon:
			if length < commonMinLen {
				continue
			}
			r.Common = addr
		case capNotify:
			r.Notify = addr
			r.NotifyMultiplier = d.Read32(c.Off + 16)
		case capDevice:
			if length < 8 {
				continue
			}
			r.Device = addr
		}
		found[typ] = true
	}
	if !found[capCommon] || !found[capNotify] || !found[capDevice] {
		return r, fmt.Errorf("%w: %v has no usable common/notify/device capabilities in assigned memory BARs", ErrNoDevice, d.Addr)
	}
	return r, nil
}

// LegacyIOBase returns the I/O port base of a transitional function's
// legacy registers (BAR0) and disables MSI-X, which would move the device
// configuration from +0x14 to +0x18. I/O decoding and bus mastering are
// still the caller's to enable.
func LegacyIOBase(d pci.Device, bars []pci.BAR) (uint16, error) {
	b, ok := pci.FindBAR(bars, 0)
	if !ok || !b.IO || b.Addr == 0 || b.Addr > 0xffff-0x20 {
		return 0, fmt.Errorf("%w: %v has no assigned legacy I/O BAR0 (%v)", ErrNoDevice, d.Addr, bars)
	}
	for _, c := range d.Caps() {
		if c.ID == pci.CapMSIX {
			d.Write16(c.Off+2, d.Read16(c.Off+2)&^(1<<15))
		}
	}
	return uint16(b.Addr), nil
}

type modernPCI struct {
	m          bus.MMIO
	r          PCIRegs
	notifyAddr [2]uint64 // per queue, from its queue_notify_off
}

// NewPCI drives a modern virtio-pci virtio-net function through the
// register blocks FindPCIRegs found. See the package documentation for
// rings, pool and opt.
func NewPCI(m bus.MMIO, regs PCIRegs, rings bus.DMA, pool *mbufpool.Pool, opt Options) (*NIC, error) {
	t := &modernPCI{m: m, r: regs}
	if m.Read16(regs.Common+commonNumQueues) == 0xffff {
		return nil, fmt.Errorf("%w: common configuration at %#x reads all-ones", ErrNoDevice, regs.Common)
	}
	return newNIC(t, rings, pool, opt)
}

func (t *modernPCI) c(off uint64) uint64 { return t.r.Common + off }

func (t *modernPCI) status() uint8          { return t.m.Read8(t.c(commonStatus)) }
func (t *modernPCI) setStatus(s uint8)      { t.m.Write8(t.c(commonStatus), s) }
func (t *modernPCI) modern() bool           { return true }
func (t *modernPCI) sizeFixed() bool        { return false }
func (t *modernPCI) config8(o uint32) uint8 { return t.m.Read8(t.r.Device + uint64(o)) }
func (t *modernPCI) configGeneration() uint32 {
	return uint32(t.m.Read8(t.c(commonConfigGen)))
}

func (t *modernPCI) notify(q uint16) {
	if int(q) < len(t.notifyAddr) && t.notifyAddr[q] != 0 { // 0: not set up yet
		t.m.Write16(t.notifyAddr[q], q)
	}
}

func (t *modernPCI) deviceFeatures() uint64 {
	t.m.Write32(t.c(commonDeviceFeatSel), 0)
	lo := t.m.Read32(t.c(commonDeviceFeatures))
	t.m.Write32(t.c(commonDeviceFeatSel), 1)
	return uint64(t.m.Read32(t.c(commonDeviceFeatures)))<<32 | uint64(lo)
}

func (t *modernPCI) setDriverFeatures(f uint64) {
	t.m.Write32(t.c(commonDriverFeatSel), 0)
	t.m.Write32(t.c(commonDriverFeatures), uint32(f))
	t.m.Write32(t.c(commonDriverFeatSel), 1)
	t.m.Write32(t.c(commonDriverFeatures), uint32(f>>32))
}

func (t *modernPCI) queueMax(q uint16) uint16 {
	if q >= t.m.Read16(t.c(commonNumQueues)) {
		return 0
	}
	t.m.Write16(t.c(commonQueueSelect), q)
	// After a reset queue_size holds the maximum; smaller sizes may be
	// written.
	return min(t.m.Read16(t.c(commonQueueSize)), maxQueueSize)
}

func (t *modernPCI) setupQueue(q, size uint16, desc, avail, used uint64) {
	t.m.Write16(t.c(commonQueueSelect), q)
	t.m.Write16(t.c(commonQueueSize), size)
	for i, a := range [3]uint64{desc, avail, used} {
		r := t.c(commonQueueDesc + 8*uint64(i))
		t.m.Write32(r, uint32(a))
		t.m.Write32(r+4, uint32(a>>32))
	}
	off := t.m.Read16(t.c(commonQueueNotifyOff))
	if int(q) < len(t.notifyAddr) {
		t.notifyAddr[q] = t.r.Notify + uint64(off)*uint64(t.r.NotifyMultiplier)
	}
	t.m.Write16(t.c(commonQueueEnable), 1)
}

type legacyPCI struct {
	p  bus.Ports
	io uint16
}

// NewLegacyPCI drives a transitional virtio-pci virtio-net function
// through its legacy I/O registers at io (see LegacyIOBase). Queue sizes
// are fixed by the device (256 on QEMU). See the package documentation
// for rings, pool and opt.
func NewLegacyPCI(p bus.Ports, io uint16, rings bus.DMA, pool *mbufpool.Pool, opt Options) (*NIC, error) {
	t := &legacyPCI{p: p, io: io}
	if p.In32(io+legacyDeviceFeatures) == 0xffffffff {
		return nil, fmt.Errorf("%w: legacy registers at I/O %#x read all-ones", ErrNoDevice, io)
	}
	return newNIC(t, rings, pool, opt)
}

func (t *legacyPCI) status() uint8              { return t.p.In8(t.io + legacyStatus) }
func (t *legacyPCI) setStatus(s uint8)          { t.p.Out8(t.io+legacyStatus, s) }
func (t *legacyPCI) deviceFeatures() uint64     { return uint64(t.p.In32(t.io + legacyDeviceFeatures)) }
func (t *legacyPCI) setDriverFeatures(f uint64) { t.p.Out32(t.io+legacyDriverFeatures, uint32(f)) }
func (t *legacyPCI) modern() bool               { return false }
func (t *legacyPCI) sizeFixed() bool            { return true }
func (t *legacyPCI) notify(q uint16)            { t.p.Out16(t.io+legacyQueueNotify, q) }
func (t *legacyPCI) config8(o uint32) uint8     { return t.p.In8(t.io + legacyConfig + uint16(o)) }
func (t *legacyPCI) configGeneration() uint32   { return 0 }

func (t *legacyPCI) queueMax(q uint16) uint16 {
	t.p.Out16(t.io+legacyQueueSelect, q)
	return min(t.p.In16(t.io+legacyQueueSize), maxQueueSize)
}

// setupQueue: the legacy interface takes one page number; the device
// assumes the legacy layout with 4096-byte alignment.
func (t *legacyPCI) setupQueue(q, _ uint16, desc, _, _ uint64) {
	t.p.Out16(t.io+legacyQueueSelect, q)
	t.p.Out32(t.io+legacyQueuePFN, uint32(desc/pageSize))
}
