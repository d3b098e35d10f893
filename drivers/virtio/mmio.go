package virtio

import (
	"fmt"

	"github.com/tamadump/tamadump/drivers/bus"
	"github.com/tamadump/tamadump/mbufpool"
)

// virtio-mmio registers (virtio 1.x §4.2.2; version 1 ones from §4.2.4).
const (
	mmioMagic          = 0x000
	mmioVersion        = 0x004
	mmioDeviceID       = 0x008
	mmioDeviceFeatures = 0x010
	mmioDeviceFeatSel  = 0x014
	mmioDriverFeatures = 0x020
	mmioDriverFeatSel  = 0x024
	mmioGuestPageSize  = 0x028 // v1
	mmioQueueSel       = 0x030
	mmioQueueNumMax    = 0x034
	mmioQueueNum       = 0x038
	mmioQueueAlign     = 0x03c // v1
	mmioQueuePFN       = 0x040 // v1
	mmioQueueReady     = 0x044 // v2
	mmioQueueNotify    = 0x050
	mmioStatus         = 0x070
	mmioQueueDescLow   = 0x080 // v2, and High at +4
	mmioQueueDriverLow = 0x090
	mmioQueueDeviceLow = 0x0a0
	mmioConfigGen      = 0x0fc // v2
	mmioConfig         = 0x100

	mmioMagicValue = 0x74726976 // "virt"
	pageSize       = 4096
)

// MMIOSlotSize is the size of one virtio-mmio register window; microvm's
// slots are this far apart, the first device at 0xfeb02e00.
const MMIOSlotSize = 0x200

type mmio struct {
	m    bus.MMIO
	base uint64
	v2   bool
}

// NewMMIO drives the virtio-net device whose virtio-mmio registers are at
// base (version 1 or 2). See the package documentation for rings, pool
// and opt.
func NewMMIO(m bus.MMIO, base uint64, rings bus.DMA, pool *mbufpool.Pool, opt Options) (*NIC, error) {
	t := &mmio{m: m, base: base}
	if m.Read32(base+mmioMagic) != mmioMagicValue || m.Read32(base+mmioDeviceID) != netDeviceID {
		return nil, fmt.Errorf("%w: virtio-mmio at %#x", ErrNoDevice, base)
	}
	switch v := m.Read32(base + mmioVersion); v {
	case 1:
	case 2:
		t.v2 = true
	default:
		return nil, fmt.Errorf("%w: virtio-mmio version %d at %#x", ErrNoDevice, v, base)
	}
	return newNIC(t, rings, pool, opt)
}

func (t *mmio) read(r uint64) uint32     { return t.m.Read32(t.base + r) }
func (t *mmio) write(r uint64, v uint32) { t.m.Write32(t.base+r, v) }

func (t *mmio) status() uint8          { return uint8(t.read(mmioStatus)) }
func (t *mmio) setStatus(s uint8)      { t.write(mmioStatus, uint32(s)) }
func (t *mmio) modern() bool           { return t.v2 }
func (t *mmio) sizeFixed() bool        { return false }
func (t *mmio) notify(q uint16)        { t.write(mmioQueueNotify, uint32(q)) }
func (t *mmio) config8(o uint32) uint8 { return t.m.Read8(t.base + mmioConfig + uint64(o)) }

func (t *mmio) deviceFeatures() uint64 {
	t.write(mmioDeviceFeatSel, 0)
	f := uint64(t.read(mmioDeviceFeatures))
	if t.v2 {
		t.write(mmioDeviceFeatSel, 1)
		f |= uint64(t.read(mmioDeviceFeatures)) << 32
	}
	return f
}

func (t *mmio) setDriverFeatures(f uint64) {
	t.write(mmioDriverFeatSel, 0)
	t.write(mmioDriverFeatures, uint32(f))
	if t.v2 { // version 1 has 32 feature bits: QEMU rejects select 1
		t.write(mmioDriverFeatSel, 1)
		t.write(mmioDriverFeatures, uint32(f>>32))
	}
}

func (t *mmio) queueMax(q uint16) uint16 {
	t.write(mmioQueueSel, uint32(q))
	return uint16(min(t.read(mmioQueueNumMax), maxQueueSize))
}

func (t *mmio) setupQueue(q, size uint16, desc, avail, used uint64) {
	t.write(mmioQueueSel, uint32(q))
	t.write(mmioQueueNum, uint32(size))
	if !t.v2 {
		// One block: QEMU derives avail and used from the PFN, the size
		// and the alignment, which is where the rings are.
		t.write(mmioGuestPageSize, pageSize)
		t.write(mmioQueueAlign, pageSize)
		t.write(mmioQueuePFN, uint32(desc/pageSize))
		return
	}
	for i, a := range [3]uint64{desc, avail, used} {
		r := uint64(mmioQueueDescLow + 0x10*i)
		t.write(r, uint32(a))
		t.write(r+4, uint32(a>>32))
	}
	t.write(mmioQueueReady, 1)
}

func (t *mmio) configGeneration() uint32 {
	if !t.v2 {
		return 0
	}
	return t.read(mmioConfigGen)
}
