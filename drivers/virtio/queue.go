package virtio

import "github.com/tamadump/tamadump/debugnet"

var _ debugnet.Queuer = (*NIC)(nil)

// Queue implements debugnet.Queuer: Transmit without notifying the
// device, which under emulation is an exit to the hypervisor per frame.
func (n *NIC) Queue(frame []byte) error { return n.transmit(frame, false) }

// Flush notifies the device of the frames Queue published, unless it
// said it needs no notification: it is working through the ring and will
// look at avail.idx again before it asks for one (see transmit).
func (n *NIC) Flush() {
	if n.held {
		n.held = false
		n.notifyTX()
	}
}
