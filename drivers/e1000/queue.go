package e1000

import "github.com/tamadump/tamadump/debugnet"

var _ debugnet.Queuer = (*NIC)(nil)

// Queue implements debugnet.Queuer: Transmit without moving TDT, a
// register write the device (QEMU's model: at once) answers by walking the
// ring.
func (n *NIC) Queue(frame []byte) error { return n.transmit(frame, false) }

// Flush moves TDT over the frames Queue filled.
func (n *NIC) Flush() {
	if n.held {
		n.held = false
		n.write(regTDT, uint32(n.txNext))
	}
}
