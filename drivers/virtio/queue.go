package virtio

import "github.com/tamadump/tamadump/debugnet"

var _ debugnet.Queuer = (*NIC)(nil)

// Queue implements debugnet.Queuer: Transmit without notifying the
// device, which under emulation is an exit to the hypervisor per frame.
func (n *NIC) Queue(frame []byte) error { return n.transmit(frame, false) }

// Flush notifies the device of the frames Queue published.
func (n *NIC) Flush() {
	if n.held {
		n.held = false
		n.t.notify(queueTX)
	}
}
