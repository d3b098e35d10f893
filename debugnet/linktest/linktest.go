// Package linktest is a test NIC for debugnet: frames it transmits go to a
// peer function (a gVisor stack, a scripted responder) and frames the peer
// delivers wait in a preallocated ring until polled, with link faults —
// loss, duplication, reordering, delay, an outage, a bottleneck with a
// drop-tail queue — injected in both directions by a Path, which relays
// between two other ends (a QEMU socket and a host stack) as well.
// Polling and transmitting without faults do not allocate.
package linktest

import (
	"sync"
)

// MaxFrame is the largest frame carried (jumbo MTU 9000 + header).
const MaxFrame = 9014

// Link is the NIC side of a test link (it implements debugnet.NIC).
type Link struct {
	mac [6]byte
	mtu int
	*Path

	mu      sync.Mutex
	ring    [][]byte // received frames, each a MaxFrame buffer
	lens    []int
	head, n int
	scratch []byte // a polled frame, outside the lock
	dropped int

	pmu  sync.Mutex
	peer func([]byte)
}

// New makes a link whose NIC has mac and mtu and can hold queue received
// frames.
func New(mac [6]byte, mtu, queue int, f Faults) *Link {
	l := &Link{
		mac: mac, mtu: mtu,
		ring: make([][]byte, queue), lens: make([]int, queue),
		scratch: make([]byte, MaxFrame),
	}
	for i := range l.ring {
		l.ring[i] = make([]byte, MaxFrame)
	}
	l.Path = NewPath(f, l.emit)
	return l
}

// Attach sets where transmitted frames go. The peer must copy the frame.
func (l *Link) Attach(peer func(frame []byte)) {
	l.pmu.Lock()
	l.peer = peer
	l.pmu.Unlock()
}

// MAC implements debugnet.NIC.
func (l *Link) MAC() [6]byte { return l.mac }

// MTU implements debugnet.NIC.
func (l *Link) MTU() int { return l.mtu }

// Transmit implements debugnet.NIC: the frame goes to the peer.
func (l *Link) Transmit(frame []byte) error {
	l.Carry(frame, Out)
	return nil
}

// Deliver is the peer's side: frame arrives at the NIC.
func (l *Link) Deliver(frame []byte) { l.Carry(frame, In) }

// Dropped counts frames lost because the NIC's queue was full.
func (l *Link) Dropped() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.dropped
}

func (l *Link) emit(frame []byte, d Direction) {
	if d == Out {
		l.pmu.Lock()
		peer := l.peer
		l.pmu.Unlock()
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
