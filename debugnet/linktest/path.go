package linktest

import (
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"
)

// Faults describe what the link does to frames, per direction. Loss,
// duplication and reordering spare ARP (a dump's loss is what is
// studied, not ARP's one-second retries); an outage takes everything.
type Faults struct {
	Loss float64 // probability a frame is dropped
	Dup  float64 // probability a frame is delivered twice
	// Reorder is the probability a frame is held back behind the next
	// one going the same way, or for HoldFor if none comes: an idle
	// link delays a frame, it does not lose it.
	Reorder float64
	// Delay is added to every frame in each direction (RTT ≈ 2·Delay).
	Delay time.Duration
	// OutageAfter frames (counting both directions) the link drops
	// everything for OutageFor.
	OutageAfter int
	OutageFor   time.Duration
	// Rate, in bytes per second, makes the way out a bottleneck: frames
	// leave one after another at that rate from a queue of Queue frames
	// (default 32); what arrives when it is full is dropped (Congested).
	Rate  int64
	Queue int
	Seed  uint64
}

// None reports whether f does nothing to frames (whatever its Seed).
func (f Faults) None() bool { return f == Faults{Seed: f.Seed} }

// Direction is the way a frame travels.
type Direction int

const (
	Out Direction = iota // from the NIC (the client) to the peer
	In                   // from the peer to the NIC
)

// Path carries frames both ways through Faults and hands what survives
// to emit, which must copy the frame.
type Path struct {
	emit func(frame []byte, d Direction)

	mu     sync.Mutex
	faults Faults
	rng    *rand.Rand
	frames int
	outEnd time.Time
	held   [2][]byte // a frame held back for reordering, per direction
	holds  [2]uint64 // frames held so far, per direction
	// busyUntil is when the bottleneck has sent what it holds.
	busyUntil time.Time

	queued    atomic.Int64 // frames in the bottleneck's queue
	congested atomic.Int64
	delayed   chan delayed // frames waiting out Delay
	squeezed  chan delayed // frames in the bottleneck's queue
	closed    chan struct{}
	closeOne  sync.Once
	start     [2]sync.Once
}

type delayed struct {
	at    time.Time
	frame []byte
	dir   Direction
	then  time.Duration // a bottleneck's frame: the delay after it leaves
}

// NewPath makes a path with faults f.
func NewPath(f Faults, emit func(frame []byte, d Direction)) *Path {
	p := &Path{
		emit:    emit,
		rng:     rand.New(rand.NewPCG(f.Seed, f.Seed^0x9e3779b97f4a7c15)),
		delayed: make(chan delayed, 1<<16), squeezed: make(chan delayed, 1<<12),
		closed: make(chan struct{}),
	}
	p.SetFaults(f)
	return p
}

// SetFaults changes the faults from now on.
func (p *Path) SetFaults(f Faults) {
	if f.Rate > 0 && f.Queue == 0 {
		f.Queue = 32
	}
	p.mu.Lock()
	p.faults = f
	p.frames = 0
	p.outEnd = time.Time{}
	p.mu.Unlock()
	if f.Delay > 0 {
		p.start[0].Do(func() { go p.deliverLater(p.delayed) })
	}
	if f.Rate > 0 {
		p.start[1].Do(func() { go p.deliverLater(p.squeezed) })
	}
}

// Congested counts frames the bottleneck's full queue dropped.
func (p *Path) Congested() int { return int(p.congested.Load()) }

// Close stops the goroutines that carry delayed frames.
func (p *Path) Close() { p.closeOne.Do(func() { close(p.closed) }) }

// Carry applies the faults to one frame going d.
func (p *Path) Carry(frame []byte, d Direction) {
	p.mu.Lock()
	f := p.faults
	if f.None() { // the allocation-free path
		p.mu.Unlock()
		p.emit(frame, d)
		return
	}
	p.frames++
	now := time.Now()
	if f.OutageFor > 0 && p.frames == f.OutageAfter {
		p.outEnd = now.Add(f.OutageFor)
	}
	if now.Before(p.outEnd) {
		p.mu.Unlock()
		return
	}
	arp := len(frame) >= 14 && frame[12] == 0x08 && frame[13] == 0x06
	if !arp && p.rng.Float64() < f.Loss {
		p.mu.Unlock()
		return
	}
	copies := 1
	if !arp && p.rng.Float64() < f.Dup {
		copies = 2
	}
	var out [3][]byte
	n := 0
	if h := p.held[d]; h == nil && !arp && p.rng.Float64() < f.Reorder {
		p.held[d] = append([]byte(nil), frame...)
		p.holds[d]++
		n := p.holds[d]
		time.AfterFunc(HoldFor, func() { p.release(d, n) })
	} else {
		for range copies {
			out[n] = frame
			n++
		}
		if h != nil {
			out[n] = h
			n++
			p.held[d] = nil
		}
	}
	var at [3]time.Time
	squeeze := d == Out && f.Rate > 0
	for i := range n {
		at[i] = now.Add(f.Delay)
		if squeeze {
			if p.queued.Load()+int64(i) >= int64(f.Queue) {
				at[i] = time.Time{} // tail drop
				p.congested.Add(1)
				continue
			}
			p.busyUntil = maxTime(p.busyUntil, now).Add(time.Duration(int64(len(out[i])) * int64(time.Second) / f.Rate))
			at[i] = p.busyUntil
		}
	}
	p.mu.Unlock()
	for i, fr := range out[:n] {
		switch {
		case squeeze && at[i].IsZero():
		case squeeze:
			p.queued.Add(1)
			p.later(p.squeezed, delayed{at: at[i], frame: append([]byte(nil), fr...), dir: d, then: f.Delay})
		default:
			p.pass(fr, d, at[i], f.Delay)
		}
	}
}

// pass hands fr on at at, through the delay line if the path has one
// (delay), else now.
func (p *Path) pass(fr []byte, d Direction, at time.Time, delay time.Duration) {
	if delay > 0 {
		p.later(p.delayed, delayed{at: at, frame: append([]byte(nil), fr...), dir: d})
		return
	}
	p.emit(fr, d)
}

// HoldFor bounds how long a frame is held back for reordering when no
// other comes after it: far beyond the reordering of a LAN's paths.
const HoldFor = time.Millisecond

// release sends the frame held back going d if it is still hold n: none
// came after it. It goes with the path's delay (and past a bottleneck's
// queue, which reordering is not combined with).
func (p *Path) release(d Direction, n uint64) {
	p.mu.Lock()
	h, f := p.held[d], p.faults
	if h == nil || p.holds[d] != n {
		p.mu.Unlock()
		return
	}
	p.held[d] = nil
	p.mu.Unlock()
	select {
	case <-p.closed:
	default:
		p.pass(h, d, time.Now().Add(f.Delay), f.Delay)
	}
}

func (p *Path) later(ch chan delayed, d delayed) {
	select {
	case ch <- d:
	default: // an overfull delay line drops, as a real queue would
		if ch == p.squeezed {
			p.queued.Add(-1)
		}
	}
}

func maxTime(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}

func (p *Path) deliverLater(ch chan delayed) {
	for {
		select {
		case <-p.closed:
			return
		case d := <-ch:
			if w := time.Until(d.at); w > 0 {
				time.Sleep(w)
			}
			if ch == p.squeezed {
				p.queued.Add(-1)
				if d.then > 0 {
					d.at, d.then = d.at.Add(d.then), 0
					p.later(p.delayed, d)
					continue
				}
			}
			p.emit(d.frame, d.dir)
		}
	}
}
