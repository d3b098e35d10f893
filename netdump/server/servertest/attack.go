package servertest

import (
	"encoding/binary"
	"net/netip"

	"golang.org/x/sys/unix"
)

// Pattern is n bytes of deterministic noise from seed.
func Pattern(seed, n int) []byte {
	b := make([]byte, n)
	x := uint32(seed*2654435761 + 1)
	for i := range b {
		x ^= x << 13
		x ^= x >> 17
		x ^= x << 5
		b[i] = byte(x)
	}
	return b
}

// Spoofer sends UDP datagrams with any source address (a raw socket:
// it needs CAP_NET_RAW), as an attacker forging a client would.
type Spoofer int

// NewSpoofer opens the raw socket.
func NewSpoofer() (Spoofer, error) {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_RAW, unix.IPPROTO_RAW)
	return Spoofer(fd), err
}

// Send sends payload from from to to (UDP checksum 0: none).
func (s Spoofer) Send(from, to netip.AddrPort, payload []byte) error {
	b := make([]byte, 28+len(payload))
	b[0], b[8], b[9] = 0x45, 64, unix.IPPROTO_UDP
	binary.BigEndian.PutUint16(b[2:], uint16(len(b)))
	src, dst := from.Addr().As4(), to.Addr().As4()
	copy(b[12:], src[:])
	copy(b[16:], dst[:])
	binary.BigEndian.PutUint16(b[20:], from.Port())
	binary.BigEndian.PutUint16(b[22:], to.Port())
	binary.BigEndian.PutUint16(b[24:], uint16(8+len(payload)))
	copy(b[28:], payload)
	return unix.Sendto(int(s), b, 0, &unix.SockaddrInet4{Addr: dst})
}

// Close closes the socket.
func (s Spoofer) Close() error { return unix.Close(int(s)) }
