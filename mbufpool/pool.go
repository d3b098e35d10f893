// Package mbufpool hands out fixed-size packet buffers carved from one
// DMA-capable region reserved at start-up. Get and Put are O(1) and never
// allocate, so drivers and debugnet can draw every buffer from it after a
// panic, when the heap must not be touched.
//
// A Pool is not safe for concurrent use: before the panic its owner
// serialises access; after the panic only one CPU runs.
package mbufpool

import (
	"errors"
	"fmt"

	"github.com/tamadump/tamadump/drivers/bus"
)

// ErrEmpty is returned by Get when every buffer is in use.
var ErrEmpty = errors.New("mbufpool: no free buffers")

// Buf is one buffer: Data is its memory, Addr the bus address of Data[0].
type Buf struct {
	Data []byte
	Addr uint64
	idx  int32
}

// Valid reports whether b came from a Pool (the zero Buf did not).
func (b Buf) Valid() bool { return b.Data != nil }

// Stats are the pool's counters.
type Stats struct {
	Size      int    // buffers in the pool
	BufSize   int    // bytes per buffer
	InUse     int    // buffers handed out now
	HighWater int    // most buffers ever handed out at once
	Failures  uint64 // Get calls that found the pool empty
}

// Pool is a fixed set of equally sized buffers.
type Pool struct {
	region  bus.DMA
	bufSize int
	free    []int32 // stack of free buffer indexes
	out     []bool  // out[i]: buffer i is handed out (catches double Put)
	stats   Stats
}

// Align is the alignment of every buffer's bus address; it satisfies the
// NICs' descriptor buffer requirements and keeps buffers cache-line aligned.
const Align = 64

// New carves as many bufSize-byte buffers as fit into region.
// bufSize is rounded up to a multiple of Align.
func New(region bus.DMA, bufSize int) (*Pool, error) {
	if bufSize <= 0 {
		return nil, fmt.Errorf("mbufpool: buffer size %d", bufSize)
	}
	bufSize = (bufSize + Align - 1) &^ (Align - 1)
	first, _, err := region.Carve(0, Align)
	if err != nil {
		return nil, err
	}
	skip := int(first.Addr - region.Addr)
	n := (len(region.Mem) - skip) / bufSize
	if n <= 0 {
		return nil, fmt.Errorf("mbufpool: region of %d bytes holds no %d-byte buffer", len(region.Mem), bufSize)
	}
	p := &Pool{
		region:  bus.DMA{Mem: region.Mem[skip : skip+n*bufSize], Addr: first.Addr},
		bufSize: bufSize,
		free:    make([]int32, n),
		out:     make([]bool, n),
	}
	for i := range p.free {
		p.free[i] = int32(n - 1 - i) // lowest index is handed out first
	}
	p.stats.Size, p.stats.BufSize = n, bufSize
	return p, nil
}

// Get takes a free buffer. Its contents are whatever the last user left.
func (p *Pool) Get() (Buf, error) {
	if len(p.free) == 0 {
		p.stats.Failures++
		return Buf{}, ErrEmpty
	}
	i := p.free[len(p.free)-1]
	p.free = p.free[:len(p.free)-1]
	p.out[i] = true
	p.stats.InUse++
	if p.stats.InUse > p.stats.HighWater {
		p.stats.HighWater = p.stats.InUse
	}
	off := int(i) * p.bufSize
	return Buf{Data: p.region.Mem[off : off+p.bufSize : off+p.bufSize], Addr: p.region.Addr + uint64(off), idx: i}, nil
}

// Take fills every slot of the given slices with a buffer, or, when the
// pool runs dry, returns what it took and ErrEmpty: drivers take their
// ring buffers all at once.
func (p *Pool) Take(slots ...[]Buf) error {
	for i, s := range slots {
		for j := range s {
			b, err := p.Get()
			if err != nil {
				p.Release(slots[:i]...)
				p.Release(s[:j])
				return err
			}
			s[j] = b
		}
	}
	return nil
}

// Release returns every buffer in the slots (the zero Buf is skipped) and
// clears them: what a driver that took its buffers does when it fails to
// start after all.
func (p *Pool) Release(slots ...[]Buf) {
	for _, s := range slots {
		for i := range s {
			if s[i].Valid() {
				p.Put(s[i])
			}
			s[i] = Buf{}
		}
	}
}

// Put returns a buffer. Returning a buffer twice, or one from another pool,
// is a bug in the caller and panics: silently accepting it would hand the
// same memory to two users.
func (p *Pool) Put(b Buf) {
	i := b.idx
	if i < 0 || int(i) >= len(p.out) || !p.out[i] || b.Addr != p.region.Addr+uint64(int(i)*p.bufSize) {
		panic("mbufpool: Put of a buffer that is not out of this pool")
	}
	p.out[i] = false
	p.free = append(p.free, i) // within capacity: never allocates
	p.stats.InUse--
}

// Stats returns the counters.
func (p *Pool) Stats() Stats { return p.stats }

// BufSize is the size of every buffer.
func (p *Pool) BufSize() int { return p.bufSize }

// Region is the memory the pool hands out, for drivers that must tell a
// device which range it may reach.
func (p *Pool) Region() bus.DMA { return p.region }
