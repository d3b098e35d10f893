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
