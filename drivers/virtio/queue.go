package virtio

import "github.com/tamadump/tamadump/debugnet"

var _ debugnet.Queuer = (*NIC)(nil)

// Queue implements debugnet.Queuer: Transmit without notifying the
// device, which under emulation is an exit to the hypervisor per frame.
func (n *NIC) Queue(frame []byte) error { return n.transmit(frame, 0, 0, nil, false) }

// Flush notifies the device of the frames Queue published, unless it
// said it needs no notification: it is working through the ring and will
// look at avail.idx again before it asks for one (see transmit).
func (n *NIC) Flush() {
	if n.held {
		n.held = false
		n.notifyTX()
	}
}

var _ debugnet.Gatherer = (*NIC)(nil)

// Gathers implements debugnet.Gatherer: every device reads a frame from a
// chain of descriptors.
func (n *NIC) Gathers() bool { return true }

// Offloads implements debugnet.Gatherer: the device offered checksum
// offload (VIRTIO_NET_F_CSUM; QEMU does where its back end takes
// virtio_net_hdr, a tap, and not on a socket or stream).
func (n *NIC) Offloads() bool { return n.features&featCSUM != 0 }

// QueueGather implements debugnet.Gatherer: head is copied behind a
// virtio_net_hdr, asking for the checksum (NEEDS_CSUM, csum_start and
// csum_offset) if sum locates one, and tail chained after it in a
// descriptor of its own.
func (n *NIC) QueueGather(head []byte, tail uint64, k int, sum debugnet.Offload) error {
	if !n.Gathers() {
		return debugnet.ErrNoGather
	}
	if sum == (debugnet.Offload{}) {
		return n.transmit(head, tail, k, nil, false)
	}
	if !n.Offloads() {
		return debugnet.ErrNoGather
	}
	return n.transmit(head, tail, k, &sum, false)
}
