package debugnet

import "github.com/tamadump/tamadump/phases"

// Queuer is a NIC that can take frames without telling the device at
// once, so that a burst costs one doorbell (a register write: on a
// hypervisor, an exit) instead of one per frame. Queue is Transmit
// without the doorbell; Flush rings it for everything queued. A full ring
// rings it itself before waiting for room.
type Queuer interface {
	Queue(frame []byte) error
	Flush()
}

// transmit hands a datagram to the NIC: queued when it can be, rung by
// Flush or the next poll.
func (c *Conn) transmit(f []byte) error {
	if c.q != nil {
		return c.q.Queue(f)
	}
	return c.nic.Transmit(f)
}

// Flush tells the NIC about the datagrams Send queued. PollOnce does it
// first, so callers that wait by polling need not.
func (c *Conn) Flush() {
	if c.q != nil {
		prev := c.ph.Enter(phases.Driver)
		c.q.Flush()
		c.ph.Enter(prev)
	}
}

// Framer is a Queuer that lends its next transmit buffer, so that a
// datagram is built where the device reads it rather than built and then
// copied there: a copied payload is then written once, as it is summed.
type Framer interface {
	Queuer
	// Frame returns the next transmit buffer (MTU plus the Ethernet
	// header at least), the same one until QueueFrame queues it; an
	// error if the ring stays full.
	Frame() ([]byte, error)
	// QueueFrame queues the first n bytes of that buffer as Queue queues
	// a frame (padded to the Ethernet minimum).
	QueueFrame(n int) error
}
