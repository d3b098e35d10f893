package virtio

import (
	"encoding/binary"

	"github.com/tamadump/tamadump/drivers/bus"
)

// fakeMMIO is an in-memory virtio-mmio virtio-net device (version 1 or
// 2) with just what the driver relies on: status and reset, feature
// windows, queue registers, TX on notify (used length 0) and RX on
// inject. It never allocates, so allocation counts taken around driver
// calls are the driver's alone: the qtest harness avoids allocating on its
// hot path too, but its socket deadlines make the count depend on the
// runtime's timer code.
type fakeMMIO struct {
	v2       bool
	offered  uint64
	maxQueue uint32
	mem      []byte // DMA memory at bus address base
	base     uint64
	mac      [6]byte

	stat, featSel, drvSel, queueSel uint32
	driverFeat                      uint64
	pageSize                        uint32
	queues                          [2]fakeQueue

	stopTX bool // model a device whose transmitter is stuck
	// stuckAfter > 0 models a device whose status stops clearing after
	// that many resets.
	stuckAfter, resets int
	sent               int
	notified           [2]int // notifications per queue
	lastLen            int
	last               [2048]byte
	lastHdr            [modernHdrLen]byte // the last frame's virtio_net_hdr
}

type fakeQueue struct {
	num, align, pfn    uint32
	ready              bool
	desc, avail, used  uint64
	lastAvail, usedIdx uint16
}

const fakeRegs = 0xfeb02e00

func newFakeMMIO(v2 bool, offered uint64) *fakeMMIO {
	return &fakeMMIO{
		v2: v2, offered: offered, maxQueue: 256,
		mem: make([]byte, 4<<20), base: 0x100000,
		mac: [6]byte{0x52, 0x54, 0x00, 0xab, 0xcd, 0xef},
	}
}

func (f *fakeMMIO) dma() bus.DMA { return bus.DMA{Mem: f.mem, Addr: f.base} }

func (f *fakeMMIO) at(addr uint64, n int) []byte {
	off := addr - f.base
	return f.mem[off : off+uint64(n)]
}

// setNoNotify sets or clears NO_NOTIFY in queue q's used.flags, as a
// device does while it works through the ring (TX) or has buffers (RX).
func (f *fakeMMIO) setNoNotify(q int, on bool) {
	fq, _ := f.rings(q)
	var v uint16
	if on {
		v = usedNoNtfy
	}
	binary.LittleEndian.PutUint16(f.at(fq.used, 2), v)
}

func (f *fakeMMIO) hdrLen() int {
	if f.driverFeat&featVersion1 != 0 {
		return modernHdrLen
	}
	return legacyHdrLen
}

func (f *fakeMMIO) reset() {
	f.stat, f.driverFeat, f.queues = 0, 0, [2]fakeQueue{}
}

// rings returns a queue's ring addresses, or ok=false if it is not live.
func (f *fakeMMIO) rings(q int) (fq *fakeQueue, ok bool) {
	fq = &f.queues[q]
	if f.stat&statusDriverOK == 0 || fq.num == 0 {
		return fq, false
	}
	if !f.v2 {
		if fq.pfn == 0 {
			return fq, false
		}
		fq.desc = uint64(fq.pfn) * uint64(f.pageSize)
		fq.avail = fq.desc + 16*uint64(fq.num)
		a := uint64(fq.align)
		fq.used = (fq.avail + 4 + 2*uint64(fq.num) + a - 1) &^ (a - 1)
		return fq, true
	}
	return fq, fq.ready
}

func (f *fakeMMIO) Read8(addr uint64) uint8 {
	if r := addr - fakeRegs; r >= mmioConfig && r < mmioConfig+6 {
		return f.mac[r-mmioConfig]
	} else if r == mmioConfig+6 {
		return configStatusLinkUp
	}
	return uint8(f.Read32(addr&^3) >> (8 * (addr & 3)))
}

func (f *fakeMMIO) Read16(addr uint64) uint16 { return uint16(f.Read32(addr&^3) >> (8 * (addr & 2))) }

func (f *fakeMMIO) Read32(addr uint64) uint32 {
	switch addr - fakeRegs {
	case mmioMagic:
		return mmioMagicValue
	case mmioVersion:
		if f.v2 {
			return 2
		}
		return 1
	case mmioDeviceID:
		return netDeviceID
	case mmioDeviceFeatures:
		if f.featSel > 1 || !f.v2 && f.featSel != 0 {
			return 0
		}
		return uint32(f.offered >> (32 * f.featSel))
	case mmioQueueNumMax:
		if f.queueSel > 1 {
			return 0
		}
		return f.maxQueue
	case mmioQueueReady:
		if f.queueSel > 1 {
			return 0
		}
		if f.queues[f.queueSel].ready {
			return 1
		}
		return 0
	case mmioStatus:
		return f.stat
	case mmioConfigGen:
		return 0
	}
	return 0
}

func (f *fakeMMIO) Write8(addr uint64, v uint8)   { f.Write32(addr, uint32(v)) }
func (f *fakeMMIO) Write16(addr uint64, v uint16) { f.Write32(addr, uint32(v)) }

func (f *fakeMMIO) Write32(addr uint64, v uint32) {
	var q *fakeQueue
	if f.queueSel < 2 {
		q = &f.queues[f.queueSel]
	}
	switch r := addr - fakeRegs; r {
	case mmioDeviceFeatSel:
		f.featSel = v
	case mmioDriverFeatSel:
		f.drvSel = v
	case mmioDriverFeatures:
		if f.drvSel < 2 {
			f.driverFeat = f.driverFeat&^(0xffffffff<<(32*f.drvSel)) | uint64(v)<<(32*f.drvSel)
		}
	case mmioGuestPageSize:
		f.pageSize = v
	case mmioQueueSel:
		f.queueSel = v
	case mmioQueueNum:
		if q != nil {
			q.num = v
		}
	case mmioQueueAlign:
		if q != nil {
			q.align = v
		}
	case mmioQueuePFN:
		if q != nil {
			q.pfn = v
		}
	case mmioQueueReady:
		if q != nil {
			q.ready = v == 1
		}
	case mmioQueueDescLow, mmioQueueDescLow + 4, mmioQueueDriverLow, mmioQueueDriverLow + 4, mmioQueueDeviceLow, mmioQueueDeviceLow + 4:
		if q != nil {
			p := [3]*uint64{&q.desc, &q.avail, &q.used}[(r-mmioQueueDescLow)/0x10]
			sh := 32 * ((r - mmioQueueDescLow) % 0x10 / 4)
			*p = *p&^(0xffffffff<<sh) | uint64(v)<<sh
		}
	case mmioStatus:
		if v == 0 {
			if f.resets++; f.stuckAfter > 0 && f.resets > f.stuckAfter {
				f.stat |= 1 // ACKNOWLEDGE stays: the reset never completes
				return
			}
			f.reset()
			return
		}
		if v&statusFeaturesOK != 0 && f.driverFeat&^f.offered != 0 {
			v &^= statusFeaturesOK // refuse features not offered
		}
		f.stat = v
	case mmioQueueNotify:
		if v < 2 {
			f.notified[v]++
		}
		if v == queueTX {
			f.transmit()
		}
	}
}

// chain walks the descriptor chain at head, calling fn per descriptor.
func (f *fakeMMIO) chain(q *fakeQueue, head uint16, fn func(addr uint64, n uint32, flags uint16)) {
	i := head
	for range q.num {
		d := f.at(q.desc+16*uint64(i), 16)
		flags := binary.LittleEndian.Uint16(d[12:])
		fn(binary.LittleEndian.Uint64(d), binary.LittleEndian.Uint32(d[8:]), flags)
		if flags&descNext == 0 {
			return
		}
		i = binary.LittleEndian.Uint16(d[14:])
	}
}

// use completes head in q's used ring with length n.
func (f *fakeMMIO) use(q *fakeQueue, head uint16, n uint32) {
	e := f.at(q.used+4+8*uint64(q.usedIdx%uint16(q.num)), 8)
	binary.LittleEndian.PutUint32(e, uint32(head))
	binary.LittleEndian.PutUint32(e[4:], n)
	q.usedIdx++
	binary.LittleEndian.PutUint16(f.at(q.used+2, 2), q.usedIdx)
}

// next takes the next available head, if any.
func (f *fakeMMIO) next(q *fakeQueue) (uint16, bool) {
	if binary.LittleEndian.Uint16(f.at(q.avail+2, 2)) == q.lastAvail {
		return 0, false
	}
	h := binary.LittleEndian.Uint16(f.at(q.avail+4+2*uint64(q.lastAvail%uint16(q.num)), 2))
	q.lastAvail++
	return h, true
}

func (f *fakeMMIO) transmit() {
	q, ok := f.rings(queueTX)
	if !ok || f.stopTX {
		return
	}
	for {
		h, ok := f.next(q)
		if !ok {
			return
		}
		f.lastLen = 0
		f.chain(q, h, func(addr uint64, n uint32, _ uint16) {
			f.lastLen += copy(f.last[f.lastLen:], f.at(addr, int(n)))
		})
		f.lastLen -= f.hdrLen()
		copy(f.lastHdr[:], f.last[:f.hdrLen()])
		copy(f.last[:], f.last[f.hdrLen():f.hdrLen()+f.lastLen])
		f.sent++
		f.use(q, h, 0)
	}
}

// inject delivers frame into the next RX buffer; false if there is none.
func (f *fakeMMIO) inject(frame []byte) bool {
	q, ok := f.rings(queueRX)
	if !ok {
		return false
	}
	h, ok := f.next(q)
	if !ok {
		return false
	}
	var hdr [modernHdrLen]byte
	hdr[10] = 1 // num_buffers, when there
	src := [2][]byte{hdr[:f.hdrLen()], frame}
	total := 0
	f.chain(q, h, func(addr uint64, n uint32, _ uint16) {
		dst := f.at(addr, int(n))
		for len(dst) > 0 && (len(src[0]) > 0 || len(src[1]) > 0) {
			if len(src[0]) == 0 {
				src[0], src[1] = src[1], nil
			}
			c := copy(dst, src[0])
			dst, src[0] = dst[c:], src[0][c:]
			total += c
		}
	})
	f.use(q, h, uint32(total))
	return true
}
