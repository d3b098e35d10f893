package virtio

import (
	"encoding/binary"
	"sync/atomic"
	"unsafe"

	"github.com/tamadump/tamadump/drivers/bus"
)

// Split virtqueue (virtio 1.x §2.7): descriptor table (16 bytes each),
// avail ring (flags, idx, ring[N], used_event) and used ring (flags, idx,
// ring[N] of {id, len}, avail_event). The rings are placed as the legacy
// interfaces require: used ring at the next 4096-byte boundary after the
// avail ring. Modern transports accept any placement, so one layout does
// for all.
const (
	descSize   = 16
	descNext   = 1
	descWrite  = 2
	ringAlign  = 4096
	availNoInt = 1 // avail.flags: do not interrupt us
	usedNoNtfy = 1 // used.flags: the device does not need notifications now
)

func alignUp(n, a int) int { return (n + a - 1) &^ (a - 1) }

func availOff(size int) int { return descSize * size }
func usedOff(size int) int  { return alignUp(availOff(size)+6+2*size, ringAlign) }

// queueBytes is the memory one queue of size entries takes.
func queueBytes(size int) int { return usedOff(size) + alignUp(6+8*size, ringAlign) }

// queue is the driver's side of one split virtqueue.
type queue struct {
	index                         uint16
	size                          uint16 // entries, a power of two
	mem                           bus.DMA
	desc, avail, used             []byte
	descAddr, availAddr, usedAddr uint64
	nextAvail                     uint16 // avail.idx the next publish writes
	lastUsed                      uint16 // used.idx up to which entries were taken
}

// newQueue lays a queue out in mem, which starts 4096-aligned and holds
// queueBytes(size).
func newQueue(index, size uint16, mem bus.DMA) queue {
	n := int(size)
	a, u := availOff(n), usedOff(n)
	return queue{
		index: index, size: size, mem: mem,
		desc: mem.Mem[:a], avail: mem.Mem[a : a+6+2*n], used: mem.Mem[u : u+6+8*n],
		descAddr: mem.Addr, availAddr: mem.Addr + uint64(a), usedAddr: mem.Addr + uint64(u),
	}
}

// init empties the rings (for a device that was just reset, whose own
// indexes are 0).
func (q *queue) init() {
	clear(q.mem.Mem)
	q.nextAvail, q.lastUsed = 0, 0
	q.publish()
}

func (q *queue) setDesc(i int, addr uint64, n uint32, flags, next uint16) {
	d := q.desc[i*descSize : (i+1)*descSize]
	binary.LittleEndian.PutUint64(d[0:], addr)
	binary.LittleEndian.PutUint32(d[8:], n)
	binary.LittleEndian.PutUint16(d[12:], flags)
	binary.LittleEndian.PutUint16(d[14:], next)
}

// push puts a chain head in the avail ring; publish makes it visible.
func (q *queue) push(head uint16) {
	binary.LittleEndian.PutUint16(q.avail[4+2*int(q.nextAvail&(q.size-1)):], head)
	q.nextAvail++
}

// word32 is the 32-bit word at b[0:4] (the ring's flags and idx), for
// atomic access: one access so the device never sees a torn or reordered
// index, and (Go's atomics being sequentially consistent) ordered after
// the descriptor and ring entry stores before it and before the loads
// after it.
func word32(b []byte) *uint32 { return (*uint32)(unsafe.Pointer(&b[0])) }

// leWord converts between a ring word as two little-endian 16-bit fields
// and the native uint32 the atomics see.
func leWord(flags, idx uint16) uint32 {
	var b [4]byte
	binary.LittleEndian.PutUint16(b[0:], flags)
	binary.LittleEndian.PutUint16(b[2:], idx)
	return binary.NativeEndian.Uint32(b[:])
}

func splitWord(w uint32) (flags, idx uint16) {
	var b [4]byte
	binary.NativeEndian.PutUint32(b[:], w)
	return binary.LittleEndian.Uint16(b[0:]), binary.LittleEndian.Uint16(b[2:])
}

// publish stores avail.flags (no interrupts) and avail.idx together.
func (q *queue) publish() {
	atomic.StoreUint32(word32(q.avail), leWord(availNoInt, q.nextAvail))
}

// device returns used.flags and used.idx as the device last wrote them.
func (q *queue) device() (flags, idx uint16) {
	return splitWord(atomic.LoadUint32(word32(q.used)))
}

// usedElem is used.ring[i mod size].
func (q *queue) usedElem(i uint16) (id, n uint32) {
	e := q.used[4+8*int(i&(q.size-1)):]
	return binary.LittleEndian.Uint32(e[0:]), binary.LittleEndian.Uint32(e[4:])
}
