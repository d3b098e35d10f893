//go:build !tamago

package usernet

import (
	"errors"
	"net"
	"net/netip"
	"syscall"

	"golang.org/x/net/ipv4"
	"golang.org/x/sys/unix"
	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/adapters/gonet"
	"gvisor.dev/gvisor/pkg/tcpip/transport/udp"

	"github.com/tamadump/tamadump/netdump/transport"
)

// Network is transport.Network on this host: the HERALD socket is bound to
// one of the host's addresses (the IPv4 one for a wildcard), which is
// therefore every HERALD's destination.
func (s *Stack) Network() transport.Network { return network{s} }

type network struct{ s *Stack }

func (n network) ListenHerald(addr netip.AddrPort) (transport.HeraldConn, error) {
	a := addr.Addr()
	if !a.IsValid() || a.IsUnspecified() {
		a = n.s.Addr()
	}
	if !n.s.Local(a) {
		return nil, errNotLocal
	}
	c, err := n.s.ListenUDPOn(a, addr.Port())
	if err != nil {
		return nil, err
	}
	port := uint16(c.LocalAddr().(*net.UDPAddr).Port)
	return &heraldConn{c: c, addr: netip.AddrPortFrom(a.Unmap(), port)}, nil
}

func (n network) DialClient(local netip.Addr, remote netip.AddrPort) (transport.ClientConn, error) {
	if !n.s.Local(local) {
		return nil, errNotLocal
	}
	c, ep, err := n.s.DialFrom(udp.ProtocolNumber, local.Unmap(), 0, remote)
	if err != nil {
		return nil, err
	}
	return &clientConn{UDPConn: c, ep: ep, mtu: n.s.MTU(), first: make([]byte, 1<<16)}, nil
}

type heraldConn struct {
	c    *gonet.UDPConn
	addr netip.AddrPort
}

func (h *heraldConn) ReadHerald(b []byte) (int, netip.AddrPort, netip.Addr, error) {
	n, from, err := h.c.ReadFrom(b)
	if err != nil {
		return 0, netip.AddrPort{}, netip.Addr{}, err
	}
	ap := from.(*net.UDPAddr).AddrPort()
	return n, netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port()), h.addr.Addr(), nil
}

func (h *heraldConn) Addr() netip.AddrPort { return h.addr }
func (h *heraldConn) Close() error         { return h.c.Close() }

// clientConn adapts gonet.UDPConn to transport.BatchConn, so that the
// server answers what one read finds with one train of ACKs (or one ACK
// list), as on the host's sockets.
type clientConn struct {
	*gonet.UDPConn
	ep    tcpip.Endpoint
	mtu   uint32
	first []byte // the blocking read's buffer: any datagram fits
}

// inFlight is how many datagrams a client may send unacked: the largest
// window of tamadump's client (netdump/client.DefaultMaxWindow; FreeBSD's
// DEBUGNET_MAX_IN_FLIGHT is 64).
const inFlight = 256

var refused = (&tcpip.ErrConnectionRefused{}).String()

// Read reports an ICMP port unreachable as ECONNREFUSED, as a host socket
// does, so that the server treats both alike.
func (c *clientConn) Read(b []byte) (int, error) {
	n, err := c.UDPConn.Read(b)
	var op *net.OpError
	if err != nil && errors.As(err, &op) && op.Err != nil && op.Err.Error() == refused {
		op.Err = syscall.ECONNREFUSED
	}
	return n, err
}

// ReadBatch waits for a datagram, then takes those queued behind it
// without waiting. A datagram longer than its buffer is cut and flagged
// MSG_TRUNC, as recvmmsg does.
func (c *clientConn) ReadBatch(ms []ipv4.Message) (int, error) {
	if len(ms) == 0 {
		return 0, nil
	}
	n, err := c.Read(c.first)
	if err != nil {
		return 0, err
	}
	setRead(&ms[0], copy(ms[0].Buffers[0], c.first[:n]), n)
	k := 1
	for ; k < len(ms); k++ {
		w := tcpip.SliceWriter(ms[k].Buffers[0])
		res, terr := c.ep.Read(&w, tcpip.ReadOptions{})
		if terr != nil {
			break // nothing queued (or an error the next wait reports)
		}
		setRead(&ms[k], res.Count, res.Total)
	}
	return k, nil
}

// setRead records that m holds n bytes of a datagram of total bytes.
func setRead(m *ipv4.Message, n, total int) {
	m.N, m.NN, m.Flags = n, 0, 0
	if total > n {
		m.Flags = unix.MSG_TRUNC
	}
}

// GRO is false: the stack delivers each datagram on its own.
func (c *clientConn) GRO() bool { return false }

// WriteTrain sends b's datagrams one by one.
func (c *clientConn) WriteTrain(b []byte, size int) error {
	for len(b) > 0 {
		k := min(size, len(b))
		if _, err := c.Write(b[:k]); err != nil {
			return err
		}
		b = b[k:]
	}
	return nil
}

// SetReadBuffer sets the receive queue (gVisor counts payload bytes), but
// never below what a client's in-flight datagrams at this MTU need:
// drops there are silent and cost the client a one-second retransmit.
func (c *clientConn) SetReadBuffer(bytes int) error {
	c.ep.SocketOptions().SetReceiveBufferSize(int64(max(bytes, inFlight*int(c.mtu-28))), true)
	return nil
}

var _ transport.BatchConn = (*clientConn)(nil)
