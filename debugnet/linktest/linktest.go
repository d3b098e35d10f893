// Package linktest is a test NIC for debugnet: frames it transmits go to a
// peer function (a gVisor stack, a scripted responder) and frames the peer
// delivers wait in a preallocated ring until polled, with link faults —
// loss, duplication, reordering, delay, an outage — injected in both
// directions. Polling and transmitting without faults do not allocate.
package linktest

import (
	"math/rand/v2"
	"sync"
	"time"
)

// MaxFrame is the largest frame carried (jumbo MTU 9000 + header).
const MaxFrame = 9014

// Faults describe what the link does to frames, per direction.
type Faults struct {
	Loss    float64 // probability a frame is dropped
	Dup     float64 // probability a frame is delivered twice
	Reorder float64 // probability a frame is held back behind the next one
	// Delay is added to every frame in each direction (RTT ≈ 2·Delay).
	Delay time.Duration
	// OutageAfter frames (counting both directions) the link drops
	// everything for OutageFor.
	OutageAfter int
	OutageFor   time.Duration
	Seed        uint64
}

// Link is the NIC side of a test link (it implements debugnet.NIC).
type Link struct {
	mac [6]byte
	mtu int

	mu      sync.Mutex
	ring    [][]byte // received frames, each a MaxFrame buffer
	lens    []int
	head, n int
	scratch []byte // a polled frame, outside the lock
	dropped int

	fmu      sync.Mutex // faults and delivery to the peer
	faults   Faults
	rng      *rand.Rand
	frames   int
	outEnd   time.Time
	held     [2][]byte // a frame held back for reordering, per direction
	peer     func([]byte)
	delayed  chan delayed
	closed   chan struct{}
	closeOne sync.Once
	// startDelay starts the goroutine that carries delayed frames.
	startDelay sync.Once
}

type delayed struct {
	at    time.Time
	frame []byte
	toNIC bool
}

// New makes a link whose NIC has mac and mtu and can hold queue received
// frames.
func New(mac [6]byte, mtu, queue int, f Faults) *Link {
	l := &Link{
		mac: mac, mtu: mtu,
		ring: make([][]byte, queue), lens: make([]int, queue),
		scratch: make([]byte, MaxFrame),
		faults:  f, rng: rand.New(rand.NewPCG(f.Seed, f.Seed^0x9e3779b97f4a7c15)),
		closed: make(chan struct{}),
	}
	for i := range l.ring {
		l.ring[i] = make([]byte, MaxFrame)
	}
	l.delayed = make(chan delayed, 1<<16)
	if f.Delay > 0 {
		l.startDelay.Do(func() { go l.deliverLater() })
	}
	return l
}

// Attach sets where transmitted frames go. The peer must copy the frame.
func (l *Link) Attach(peer func(frame []byte)) {
	l.fmu.Lock()
	l.peer = peer
	l.fmu.Unlock()
}

// SetFaults changes the faults from now on.
func (l *Link) SetFaults(f Faults) {
	l.fmu.Lock()
	l.faults = f
	if f.Delay > 0 {
		l.startDelay.Do(func() { go l.deliverLater() })
	}
	l.frames = 0
	l.outEnd = time.Time{}
	l.fmu.Unlock()
}

// Close stops the delay goroutine.
func (l *Link) Close() { l.closeOne.Do(func() { close(l.closed) }) }

// MAC implements debugnet.NIC.
func (l *Link) MAC() [6]byte { return l.mac }

// MTU implements debugnet.NIC.
func (l *Link) MTU() int { return l.mtu }

// Transmit implements debugnet.NIC: the frame goes to the peer.
func (l *Link) Transmit(frame []byte) error {
	l.carry(frame, false)
	return nil
}

// Deliver is the peer's side: frame arrives at the NIC.
func (l *Link) Deliver(frame []byte) { l.carry(frame, true) }

// Dropped counts frames lost because the NIC's queue was full.
func (l *Link) Dropped() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.dropped
}

// carry applies the faults to one frame in one direction.
func (l *Link) carry(frame []byte, toNIC bool) {
	l.fmu.Lock()
	f := l.faults
	if f == (Faults{Seed: f.Seed}) { // no faults: the allocation-free path
		peer := l.peer
		l.fmu.Unlock()
		l.emit(peer, frame, toNIC)
		return
	}
	l.frames++
	now := time.Now()
	if f.OutageFor > 0 && l.frames == f.OutageAfter {
		l.outEnd = now.Add(f.OutageFor)
	}
	if now.Before(l.outEnd) || l.rng.Float64() < f.Loss {
		l.fmu.Unlock()
		return
	}
	copies := 1
	if l.rng.Float64() < f.Dup {
		copies = 2
	}
	dir := 0
	if toNIC {
		dir = 1
	}
	var out [][]byte
	if l.held[dir] == nil && l.rng.Float64() < f.Reorder {
		l.held[dir] = append([]byte(nil), frame...)
	} else {
		for range copies {
			out = append(out, frame)
		}
		if h := l.held[dir]; h != nil {
			out = append(out, h)
			l.held[dir] = nil
		}
	}
	peer := l.peer
	l.fmu.Unlock()
	for _, fr := range out {
		if f.Delay > 0 {
			select {
			case l.delayed <- delayed{at: now.Add(f.Delay), frame: append([]byte(nil), fr...), toNIC: toNIC}:
			default: // an overfull delay line drops, as a real queue would
			}
			continue
		}
		l.emit(peer, fr, toNIC)
	}
}

func (l *Link) emit(peer func([]byte), frame []byte, toNIC bool) {
	if !toNIC {
		if peer != nil {
			peer(frame)
		}
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.n == len(l.ring) || len(frame) > MaxFrame {
		l.dropped++
		return
	}
	i := (l.head + l.n) % len(l.ring)
	l.lens[i] = copy(l.ring[i], frame)
	l.n++
}

func (l *Link) deliverLater() {
	for {
		select {
		case <-l.closed:
			return
		case d := <-l.delayed:
			if w := time.Until(d.at); w > 0 {
				time.Sleep(w)
			}
			l.fmu.Lock()
			peer := l.peer
			l.fmu.Unlock()
			l.emit(peer, d.frame, d.toNIC)
		}
	}
}

// Poll implements debugnet.NIC.
func (l *Link) Poll(fn func(frame []byte)) int {
	count := 0
	for {
		l.mu.Lock()
		if l.n == 0 {
			l.mu.Unlock()
			return count
		}
		n := copy(l.scratch, l.ring[l.head][:l.lens[l.head]])
		l.head = (l.head + 1) % len(l.ring)
		l.n--
		l.mu.Unlock()
		// Outside the lock: fn may transmit, and the peer may deliver.
		fn(l.scratch[:n])
		count++
	}
}
