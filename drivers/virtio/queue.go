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

// Gathers implements debugnet.Gatherer: every device reads a frame from
// a chain of descriptors, and completes its checksum if it offered
// checksum offload (VIRTIO_NET_F_CSUM; QEMU does where its back end takes
// virtio_net_hdr, a tap or a vhost-user device, and not on a socket or
// stream).
func (n *NIC) Gathers() bool { return n.features&featCSUM != 0 }

// QueueGather implements debugnet.Gatherer: head is copied behind a
// virtio_net_hdr asking for the checksum (NEEDS_CSUM, csum_start and
// csum_offset), and tail chained after it in a descriptor of its own.
func (n *NIC) QueueGather(head []byte, tail uint64, k int, sum debugnet.Offload) error {
	if !n.Gathers() {
		return debugnet.ErrNoGather
	}
	return n.transmit(head, tail, k, &sum, false)
}

var _ debugnet.Framer = (*NIC)(nil)

// Frame implements debugnet.Framer: the data area of a free slot's
// buffer, behind the virtio_net_hdr's room. The slot stays lent, and
// Frame returns it again, until QueueFrame hands it to the device.
func (n *NIC) Frame() ([]byte, error) {
	if n.lent < 0 {
		s, err := n.freeSlot()
		if err != nil {
			return nil, err
		}
		n.lent = s
	}
	return n.txBuf[n.lent].Data[n.hdrLen : n.hdrLen+maxFrame], nil
}

// QueueFrame implements debugnet.Framer: Queue of the first l bytes of
// the buffer Frame lent, where they are.
func (n *NIC) QueueFrame(l int) error {
	if n.lent < 0 || l <= 0 || l > maxFrame {
		return ErrFrameSize
	}
	s := n.lent
	n.lent = -1
	return n.post(s, l, 0, 0, nil, false)
}
