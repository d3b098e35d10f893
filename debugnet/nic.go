package debugnet

// NIC is the polled network interface debugnet runs on. Drivers implement
// it without interrupts and without heap allocation, so it keeps working
// after a panic.
type NIC interface {
	// Transmit queues one Ethernet frame (no FCS) for sending. The driver
	// copies the frame; the caller may reuse it on return.
	Transmit(frame []byte) error
	// Poll hands every frame received since the last call to fn and
	// returns how many there were. A frame is valid only during fn.
	Poll(fn func(frame []byte)) int
	// MAC is the interface's Ethernet address.
	MAC() [6]byte
	// MTU is the largest IP packet the link carries (1500 for Ethernet).
	MTU() int
}
