package debugnet

import "errors"

// Gatherer is a Queuer that can also send a frame in two parts: its head,
// copied as Queue copies a frame, and a tail the device reads in place at
// a bus address, so that a payload in RAM goes out without being copied;
// and that may complete UDP checksums itself (offload). Send uses one
// that offloads for every datagram: the checksum then costs the CPU
// nothing.
type Gatherer interface {
	Queuer
	// QueueGather queues head followed by the n bytes at bus address
	// tail (none if n is 0), which must stay where they are until the
	// device has read them. With an offload (sum.Start > 0) the device
	// computes the Internet checksum of the frame from byte sum.Start to
	// its end and stores it at sum.Start+sum.Offset, where the caller put
	// the pseudo-header's sum; without, the frame is sent as it is.
	QueueGather(head []byte, tail uint64, n int, sum Offload) error
	// Gathers reports whether the device sends a tail in place, Offloads
	// whether it also completes checksums (what it offered when the
	// driver started).
	Gathers() bool
	Offloads() bool
}

// Offload locates a checksum for a Gatherer to complete: it covers the
// frame from Start to its end and goes at Start+Offset. The zero Offload
// is none.
type Offload struct{ Start, Offset uint16 }

// ErrNoGather is SendFrom's error on a NIC that is not a Gatherer.
var ErrNoGather = errors.New("debugnet: the NIC cannot send from memory in place")

// Gathers reports whether SendFrom works: the NIC is a Gatherer that
// gathers. Offloads reports whether it completes the checksums too;
// without, SendFrom checksums the tail where it is.
func (c *Conn) Gathers() bool  { return c.g != nil }
func (c *Conn) Offloads() bool { return c.offload }

// SendFrom is Send of a payload whose first n bytes were written to
// Payload and whose rest is tail, which the NIC reads where it is, at bus
// address addr: nothing copies or reads tail, and it must not change until
// the NIC has sent it (after a crash, RAM that nothing writes). The NIC
// must be a Gatherer.
func (c *Conn) SendFrom(dstPort uint16, n int, tail []byte, addr uint64) error {
	if c.g == nil {
		return ErrNoGather
	}
	return c.send(dstPort, n, tail, addr)
}
