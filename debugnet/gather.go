package debugnet

import "errors"

// Gatherer is a Queuer that can also send a frame in two parts, its head
// copied as Queue copies a frame and a tail the device reads in place at
// a bus address, completing the UDP checksum as it reads: a payload in
// RAM goes out without being copied or read by the CPU. Both or neither:
// a checksum the CPU took before the device reads the tail goes stale if
// the tail changes meanwhile, and a dump's own pages (the NIC's rings and
// buffers, the stacks and data of the code sending them) do; the
// datagram is then dropped as corrupt and sent again. Send uses a
// Gatherer for every datagram, so checksums cost the CPU nothing.
type Gatherer interface {
	Queuer
	// QueueGather queues head followed by the n bytes at bus address
	// tail (none if n is 0), which must stay where they are until the
	// device has read them. The device computes the Internet checksum of
	// the frame from byte sum.Start to its end and stores it at
	// sum.Start+sum.Offset, where the caller put the pseudo-header's sum.
	QueueGather(head []byte, tail uint64, n int, sum Offload) error
	// Gathers reports whether the device does (what it offered when the
	// driver started).
	Gathers() bool
}

// Offload locates the checksum a Gatherer completes: it covers the frame
// from Start to its end and goes at Start+Offset.
type Offload struct{ Start, Offset uint16 }

// ErrNoGather is SendFrom's error on a NIC that is not a Gatherer.
var ErrNoGather = errors.New("debugnet: the NIC cannot send from memory in place")

// Gathers reports whether SendFrom works: the NIC is a Gatherer that
// gathers.
func (c *Conn) Gathers() bool { return c.g != nil }

// SendFrom is Send of a payload whose first n bytes were written to
// Payload and whose rest is tail, which the NIC reads where it is, at bus
// address addr: nothing copies or reads tail, and the datagram carries
// what the NIC read. The NIC must be a Gatherer.
func (c *Conn) SendFrom(dstPort uint16, n int, tail []byte, addr uint64) error {
	if c.g == nil {
		return ErrNoGather
	}
	return c.send(dstPort, n, tail, addr, true)
}

// SendCopy is Send of a payload whose first n bytes were written to
// Payload and whose rest is tail, copied into the frame; without a
// Gatherer its checksum is taken in the same pass (charged to the copy
// phase) and of the bytes copied, so it is right even if tail changes
// meanwhile.
func (c *Conn) SendCopy(dstPort uint16, n int, tail []byte) error {
	return c.send(dstPort, n, tail, 0, false)
}
