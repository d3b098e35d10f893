package virtio

import (
	"encoding/binary"
	"fmt"
	"unsafe"

	"github.com/tamadump/tamadump/debugnet"
	"github.com/tamadump/tamadump/drivers/bus"
	"github.com/tamadump/tamadump/mbufpool"
)

// txFullChecks bounds how often Transmit re-checks a full TX ring (one
// status register read each: about a microsecond on hardware, one qtest
// round trip under test) before giving up, so a stuck device cannot hang
// a panic path. Between two reads it looks at the used ring txFullSpins
// times: on QEMU a register read waits for the device's lock, which the
// device holds while it sends the ring's frames, so reading only the
// register would hold that sending up.
const (
	txFullChecks = 2000
	txFullSpins  = 256
)

// Options tune the constructors.
type Options struct {
	// QueueSize is the number of entries of each virtqueue, a power of
	// two; 0 means 256, or the device's maximum if that is smaller.
	// Legacy virtio-pci fixes the size (256 on QEMU) and ignores it.
	QueueSize int
}

// RingBytes is the size of the rings region the constructors need for queues of the
// given size, when the region starts 4096-byte aligned.
func RingBytes(queueSize int) int { return 2 * queueBytes(queueSize) }

// NIC is one virtio-net device. Not safe for concurrent use.
type NIC struct {
	t        transport
	rx, tx   queue
	features uint64 // negotiated
	hdrLen   int    // virtio_net_hdr in front of every frame
	// chain: the header has its own descriptor (legacy without
	// ANY_LAYOUT), so slot s is descriptors 2s and 2s+1; else slot s is
	// descriptor s.
	chain bool

	// One buffer per slot, for good: Reset needs no pool.
	rxBuf, txBuf   []mbufpool.Buf
	rxBusy, txBusy []bool   // the slot is with the device
	txFree         []uint16 // stack of free TX slots
	lent           int      // the TX slot Frame lent, or -1
	held           bool     // Queue published frames without notifying

	mac [6]byte
}

var _ debugnet.NIC = (*NIC)(nil)

// newNIC is the constructors' common part (see the package
// documentation).
func newNIC(t transport, rings bus.DMA, pool *mbufpool.Pool, opt Options) (*NIC, error) {
	want := opt.QueueSize
	if want == 0 {
		want = defaultQueueSize
	}
	if want < 2 || want > maxQueueSize || want&(want-1) != 0 {
		return nil, fmt.Errorf("virtio: queue size %d is not a power of two in [2, %d]", want, maxQueueSize)
	}
	n := &NIC{t: t}
	if err := n.deviceReset(); err != nil {
		return nil, err
	}
	offered := t.deviceFeatures()
	if offered&featMAC == 0 || t.modern() && offered&featVersion1 == 0 {
		return nil, fmt.Errorf("%w: offered %#x", ErrFeatures, offered)
	}
	n.features = offered & (featMAC | featStatus | featCSUM)
	if t.modern() {
		n.features |= featVersion1
		n.hdrLen = modernHdrLen
	} else {
		n.features |= offered & featAnyLayout
		n.hdrLen = legacyHdrLen
		n.chain = offered&featAnyLayout == 0
	}
	if pool.BufSize() < n.hdrLen+maxFrame {
		return nil, fmt.Errorf("virtio: pool buffers are %d bytes, need %d", pool.BufSize(), n.hdrLen+maxFrame)
	}

	for _, q := range [2]*queue{&n.rx, &n.tx} {
		idx := uint16(queueRX)
		if q == &n.tx {
			idx = queueTX
		}
		max := int(t.queueMax(idx))
		size := min(want, max)
		if t.sizeFixed() {
			size = max
		}
		if size < 2 || size&(size-1) != 0 {
			return nil, fmt.Errorf("%w: queue %d: maximum size %d", ErrQueue, idx, max)
		}
		mem, rest, err := rings.Carve(queueBytes(size), ringAlign)
		if err != nil {
			return nil, fmt.Errorf("virtio: queue %d: %w", idx, err)
		}
		rings = rest
		if !t.modern() && mem.Addr+uint64(len(mem.Mem)) > pageSize<<32 {
			return nil, fmt.Errorf("virtio: queue %d at %#x: a legacy queue PFN is 32 bits", idx, mem.Addr)
		}
		// The index words are accessed with 32-bit atomics: they must
		// be aligned in this address space as on the bus.
		if uintptr(unsafe.Pointer(&mem.Mem[0]))%4 != 0 {
			return nil, fmt.Errorf("virtio: rings region is not 4-byte aligned in memory")
		}
		*q = newQueue(idx, uint16(size), mem)
	}

	rxSlots, txSlots := n.slots(&n.rx), n.slots(&n.tx)
	n.rxBuf, n.rxBusy = make([]mbufpool.Buf, rxSlots), make([]bool, rxSlots)
	n.txBuf, n.txBusy = make([]mbufpool.Buf, txSlots), make([]bool, txSlots)
	n.txFree = make([]uint16, 0, txSlots)
	for i, bufs := range [2][]mbufpool.Buf{n.rxBuf, n.txBuf} {
		for s := range bufs {
			b, err := pool.Get()
			if err != nil {
				pool.Release(n.rxBuf, n.txBuf)
				return nil, fmt.Errorf("virtio: %d buffers for %s: %w", len(bufs), [2]string{"RX", "TX"}[i], err)
			}
			bufs[s] = b
		}
	}
	n.mac = n.readMAC()
	if err := n.Reset(); err != nil {
		pool.Release(n.rxBuf, n.txBuf)
		return nil, err
	}
	return n, nil
}

// per is how many descriptors a slot of queue q takes: one for the
// header when it has its own (legacy without ANY_LAYOUT), one for the
// frame, and on TX one for a gathered tail.
func (n *NIC) per(q *queue) int {
	d := 1
	if n.chain {
		d++
	}
	if q == &n.tx {
		d++
	}
	return d
}

// slots is how many buffers a queue holds at once.
func (n *NIC) slots(q *queue) int { return int(q.size) / n.per(q) }

// head is the first descriptor of slot s of q.
func (n *NIC) head(q *queue, s int) uint16 { return uint16(n.per(q) * s) }

// slotOf maps a used element's id back to a slot of q; ids a device (or
// garbage in the ring) makes up are rejected.
func (n *NIC) slotOf(q *queue, id uint32, slots int) (int, bool) {
	per := uint32(n.per(q))
	return int(id / per), id%per == 0 && id/per < uint32(slots)
}

// readMAC reads the address from device config, again if the config
// generation changed meanwhile.
func (n *NIC) readMAC() [6]byte {
	var mac [6]byte
	for try := 0; try < 10; try++ {
		g := n.t.configGeneration()
		for i := range mac {
			mac[i] = n.t.config8(uint32(i))
		}
		if n.t.configGeneration() == g {
			break
		}
	}
	return mac
}

// MAC implements debugnet.NIC.
func (n *NIC) MAC() [6]byte { return n.mac }

// MTU implements debugnet.NIC.
func (n *NIC) MTU() int { return mtu }

// HeaderLen is the size of the virtio_net_hdr in front of every frame:
// 12 with VERSION_1, 10 on legacy transports.
func (n *NIC) HeaderLen() int { return n.hdrLen }

// LinkUp reports the device's link status (always up if the device does
// not offer STATUS).
func (n *NIC) LinkUp() bool {
	return n.features&featStatus == 0 || n.t.config8(6)&configStatusLinkUp != 0
}

func (n *NIC) deviceReset() error {
	n.t.setStatus(0)
	for i := 0; n.t.status() != 0; i++ {
		if i == resetPolls {
			return ErrResetTimeout
		}
	}
	return nil
}

// fail tells the device the driver gave up (FAILED) and returns err.
func (n *NIC) fail(st uint8, err error) error {
	n.t.setStatus(st | statusFailed)
	return err
}

// Reset brings the device from any state (rings half updated by an
// interrupted driver, garbage indexes, a device that flagged an error) to
// the state construction left it in, without allocating: device reset, the
// feature set negotiated then, empty rings, every RX slot given to the
// device, DRIVER_OK. Frames received but not yet polled are lost; frames
// queued for sending may or may not have left.
func (n *NIC) Reset() error {
	if err := n.deviceReset(); err != nil {
		return err
	}
	st := uint8(statusAck)
	n.t.setStatus(st)
	st |= statusDriver
	n.t.setStatus(st)
	if n.t.deviceFeatures()&n.features != n.features {
		return n.fail(st, ErrFeatures)
	}
	n.t.setDriverFeatures(n.features)
	if n.t.modern() {
		st |= statusFeaturesOK
		n.t.setStatus(st)
		if n.t.status()&statusFeaturesOK == 0 {
			return n.fail(st, ErrFeaturesOK)
		}
	}
	for _, q := range [2]*queue{&n.rx, &n.tx} {
		max := n.t.queueMax(q.index)
		if max < q.size || n.t.sizeFixed() && max != q.size {
			return n.fail(st, ErrQueue)
		}
		q.init()
		n.t.setupQueue(q.index, q.size, q.descAddr, q.availAddr, q.usedAddr)
	}
	for s := range n.rxBuf {
		n.postRX(s)
	}
	n.rx.publish()
	n.txFree, n.lent = n.txFree[:0], -1
	for s := len(n.txBuf) - 1; s >= 0; s-- { // slot 0 is used first
		n.txBusy[s] = false
		n.txFree = append(n.txFree, uint16(s)) // within capacity
	}
	st |= statusDriverOK
	n.t.setStatus(st)
	if n.t.status()&(statusNeedsReset|statusFailed) != 0 {
		return ErrDeviceFailed
	}
	n.t.notify(queueRX)
	return nil
}

// postRX gives RX slot s to the device (published by the caller).
func (n *NIC) postRX(s int) {
	b, h := n.rxBuf[s], n.head(&n.rx, s)
	if n.chain {
		n.rx.setDesc(int(h), b.Addr, uint32(n.hdrLen), descWrite|descNext, h+1)
		n.rx.setDesc(int(h)+1, b.Addr+uint64(n.hdrLen), uint32(len(b.Data)-n.hdrLen), descWrite, 0)
	} else {
		n.rx.setDesc(int(h), b.Addr, uint32(len(b.Data)), descWrite, 0)
	}
	n.rx.push(h)
	n.rxBusy[s] = true
}

// txUsed is the TX used.idx the device last wrote.
func (n *NIC) txUsed() uint16 {
	_, idx := n.tx.device()
	return idx
}

// reclaim takes back the TX slots the device has used.
func (n *NIC) reclaim() {
	q := &n.tx
	_, end := q.device()
	for i := 0; q.lastUsed != end && i < int(q.size); i++ {
		id, _ := q.usedElem(q.lastUsed)
		q.lastUsed++
		if s, ok := n.slotOf(q, id, len(n.txBuf)); ok && n.txBusy[s] {
			n.txBusy[s] = false
			n.txFree = append(n.txFree, uint16(s)) // within capacity
		}
	}
}

// Transmit implements debugnet.NIC: it copies frame (zero-padded to 60
// bytes) behind an all-zero virtio_net_hdr into a free slot's buffer and
// hands it to the device. The device sends asynchronously; used slots are
// reclaimed here. If the ring stays full for a bounded number of checks,
// Transmit returns ErrTXFull instead of waiting for ever.
func (n *NIC) Transmit(frame []byte) error { return n.transmit(frame, 0, 0, nil, true) }

// transmit sends frame followed by the k bytes at bus address tail (none
// if k is 0), with the checksum sum asks for (nil: none), notifying the
// device if tell.
func (n *NIC) transmit(frame []byte, tail uint64, k int, sum *debugnet.Offload, tell bool) error {
	if len(frame) == 0 || k < 0 || len(frame)+k > maxFrame || k > 0 && len(frame)+k < minFrame {
		return ErrFrameSize
	}
	s, err := n.freeSlot()
	if err != nil {
		return err
	}
	return n.post(s, copy(n.txBuf[s].Data[n.hdrLen:], frame), tail, k, sum, tell)
}

// freeSlot takes a free TX slot, reclaiming the used ones; if there is
// none it waits a bounded while for the device (ErrTXFull).
func (n *NIC) freeSlot() (int, error) {
	n.reclaim()
	if len(n.txFree) == 0 {
		// Notify even if the device said it needs no notifications: a
		// stale NO_NOTIFY must not leave the ring full for good.
		n.t.notify(queueTX)
		for i := 0; len(n.txFree) == 0; i++ {
			if i == txFullChecks {
				return 0, ErrTXFull
			}
			n.t.status() // paces the wait by device accesses
			for j := 0; j < txFullSpins && n.txUsed() == n.tx.lastUsed; j++ {
			}
			n.reclaim()
		}
	}
	s := int(n.txFree[len(n.txFree)-1])
	n.txFree = n.txFree[:len(n.txFree)-1]
	return s, nil
}

// post hands slot s to the device: the l bytes of its frame, then the k
// bytes at bus address tail, behind a virtio_net_hdr asking for sum (nil:
// no checksum), notifying the device if tell.
func (n *NIC) post(s, l int, tail uint64, k int, sum *debugnet.Offload, tell bool) error {
	b, h, hl := n.txBuf[s], n.head(&n.tx, s), n.hdrLen
	clear(b.Data[:hl])
	if sum != nil {
		b.Data[0] = hdrNeedsCsum
		binary.LittleEndian.PutUint16(b.Data[6:], sum.Start)
		binary.LittleEndian.PutUint16(b.Data[8:], sum.Offset)
	}
	if l < minFrame && k == 0 {
		clear(b.Data[hl+l : hl+minFrame])
		l = minFrame
	}
	var more uint16
	if k > 0 {
		more = descNext
	}
	d := h // the frame's descriptor
	if n.chain {
		n.tx.setDesc(int(h), b.Addr, uint32(hl), descNext, h+1)
		d++
		n.tx.setDesc(int(d), b.Addr+uint64(hl), uint32(l), more, d+1)
	} else {
		n.tx.setDesc(int(h), b.Addr, uint32(hl+l), more, h+1)
	}
	if k > 0 {
		n.tx.setDesc(int(d)+1, tail, uint32(k), 0, 0)
	}
	n.tx.push(h)
	n.txBusy[s] = true
	n.tx.publish()
	if !tell {
		n.held = true
		return nil
	}
	n.held = false
	n.notifyTX()
	return nil
}

// notifyTX notifies the TX queue unless the device said it needs no
// notification. On QEMU a notification is an exit that waits for the
// device's lock, which its transmit holds while it sends the ring's frames,
// so notifying a device that is already sending costs the guest that
// whole send. The device clears NO_NOTIFY before its last look at
// avail.idx, and publish (sequentially consistent) came before this load,
// so skipping the notify cannot strand a frame.
func (n *NIC) notifyTX() {
	if flags, _ := n.tx.device(); flags&usedNoNtfy == 0 {
		n.t.notify(queueTX)
	}
}

// Poll implements debugnet.NIC. It hands each received frame (without
// the virtio_net_hdr) to fn, then gives the buffers back to the device
// and notifies the RX queue if the device asks for it: one that ran out of
// buffers holds arriving frames until notified of new ones, and clears
// NO_NOTIFY before its last look at avail.idx (as on TX); one that still
// has buffers takes the new ones without (on QEMU a notification also
// delivers every frame it holds, in the guest's exit). At most one ring's
// worth per call. fn may call Transmit.
func (n *NIC) Poll(fn func(frame []byte)) int {
	q := &n.rx
	_, end := q.device()
	frames, taken := 0, false
	for i := 0; q.lastUsed != end && i < int(q.size); i++ {
		id, l := q.usedElem(q.lastUsed)
		q.lastUsed++
		s, ok := n.slotOf(q, id, len(n.rxBuf))
		if !ok || !n.rxBusy[s] {
			continue // not a buffer the device holds: ring garbage
		}
		n.rxBusy[s] = false
		taken = true
		if b := n.rxBuf[s].Data; int(l) > n.hdrLen && int(l) <= len(b) {
			fn(b[n.hdrLen:l])
			frames++
		}
	}
	if taken {
		// Re-posting after the loop, not per frame, keeps an id repeated
		// by garbage in the used ring from counting twice.
		for s, busy := range n.rxBusy {
			if !busy {
				n.postRX(s)
			}
		}
		q.publish()
		if flags, _ := q.device(); flags&usedNoNtfy == 0 {
			n.t.notify(queueRX)
		}
	}
	return frames
}
