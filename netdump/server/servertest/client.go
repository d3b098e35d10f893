// Package servertest is a minimal netdump client for testing servers: it
// sends batches of up to 64 messages and waits for every ACK,
// retransmitting the missing ones, as FreeBSD's debugnet does (with a
// correct 64-bit ACK mask). Messages can also be sent raw, to test hostile
// input, over a lossy link (Lossy), or with a forged source (Spoofer).
package servertest

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"net/netip"
	"sync"
	"time"

	"github.com/tamadump/tamadump/netdump/wire"
)

// MaxInFlight is DEBUGNET_MAX_IN_FLIGHT.
const MaxInFlight = 64

// Conn is a UDP socket bound to the client's ACK port.
type Conn interface {
	WriteTo(b []byte, to netip.AddrPort) error
	ReadFrom(b []byte) (int, netip.AddrPort, error)
	SetReadDeadline(t time.Time) error
}

// UDP adapts a host socket; it does not allocate per datagram.
func UDP(c *net.UDPConn) Conn { return udpConn{c} }

type udpConn struct{ c *net.UDPConn }

func (u udpConn) WriteTo(b []byte, to netip.AddrPort) error {
	_, err := u.c.WriteToUDPAddrPort(b, to)
	return err
}

func (u udpConn) ReadFrom(b []byte) (int, netip.AddrPort, error) {
	n, from, err := u.c.ReadFromUDPAddrPort(b)
	return n, netip.AddrPortFrom(from.Addr().Unmap(), from.Port()), err
}

func (u udpConn) SetReadDeadline(t time.Time) error { return u.c.SetReadDeadline(t) }

// Packet adapts any net.PacketConn with *net.UDPAddr addresses (e.g.
// gVisor's gonet.UDPConn).
func Packet(c net.PacketConn) Conn { return packetConn{c} }

type packetConn struct{ c net.PacketConn }

func (p packetConn) WriteTo(b []byte, to netip.AddrPort) error {
	_, err := p.c.WriteTo(b, net.UDPAddrFromAddrPort(to))
	return err
}

func (p packetConn) ReadFrom(b []byte) (int, netip.AddrPort, error) {
	n, from, err := p.c.ReadFrom(b)
	if err != nil {
		return 0, netip.AddrPort{}, err
	}
	ua, ok := from.(*net.UDPAddr)
	if !ok {
		return 0, netip.AddrPort{}, fmt.Errorf("servertest: address %v is not UDP", from)
	}
	ap := ua.AddrPort()
	return n, netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port()), nil
}

func (p packetConn) SetReadDeadline(t time.Time) error { return p.c.SetReadDeadline(t) }

// Msg is one message to send; Len is taken from Payload.
type Msg struct {
	Type    wire.MsgType
	Offset  uint64
	Payload []byte
	Aux2    uint32
}

// Client is one dumping host.
type Client struct {
	conn   Conn
	herald netip.AddrPort
	data   netip.AddrPort // learned from the HERALD's ACK
	seq    uint32

	// RTO is the wait before retransmitting; Retries the rounds before
	// giving up.
	RTO     time.Duration
	Retries int
	// Lists asks for ACK lists in the HERALD; AckDatagrams counts the
	// ACKs and lists received.
	Lists        bool
	AckDatagrams int

	slab []byte
	pkts [MaxInFlight][]byte
	rbuf [2048]byte
}

// ErrTimeout means messages stayed unacknowledged after all retries.
var ErrTimeout = errors.New("servertest: no ACK")

// New returns a client of the server whose HERALD port is server.
func New(conn Conn, server netip.AddrPort) *Client {
	return &Client{conn: conn, herald: server, seq: 1, RTO: 300 * time.Millisecond, Retries: 10}
}

// Seq is the seqno the next message gets.
func (c *Client) Seq() uint32 { return c.seq }

// Skip moves Seq on by n, past messages sent raw.
func (c *Client) Skip(n uint32) { c.seq += n }

// DataAddr is where messages go after the HERALD.
func (c *Client) DataAddr() netip.AddrPort { return c.data }

// Herald starts a dump into path ("" for the server's default) and learns
// the server's data port from the ACK's source.
func (c *Client) Herald(path string) error {
	var p []byte
	if path != "" {
		p = append([]byte(path), 0)
	}
	c.data = netip.AddrPort{}
	m := Msg{Type: wire.Herald, Payload: p}
	if c.Lists {
		m.Aux2 = wire.AckLists
	}
	return c.send(c.herald, []Msg{m})
}

// Send sends up to MaxInFlight messages as one batch and waits until all
// are acknowledged.
func (c *Client) Send(msgs ...Msg) error {
	if !c.data.IsValid() {
		return errors.New("servertest: no HERALD acknowledged")
	}
	return c.send(c.data, msgs)
}

// Finish sends FINISHED.
func (c *Client) Finish() error { return c.Send(Msg{Type: wire.Finished}) }

// SendRaw sends one datagram to the data port, without waiting.
func (c *Client) SendRaw(b []byte) error { return c.conn.WriteTo(b, c.data) }

// SendRawTo sends one datagram anywhere, without waiting.
func (c *Client) SendRawTo(b []byte, to netip.AddrPort) error { return c.conn.WriteTo(b, to) }

// Expect waits up to d for an ACK of seqno (alone or in a list); any
// other datagram is skipped. It reports whether one came.
func (c *Client) Expect(seqno uint32, d time.Duration) bool {
	deadline := time.Now().Add(d)
	c.conn.SetReadDeadline(deadline)
	for {
		n, _, err := c.conn.ReadFrom(c.rbuf[:])
		if err != nil {
			return false
		}
		if a, err := wire.ParseAcks(c.rbuf[:n]); err == nil && a.Has(seqno) {
			return true
		}
	}
}

// ReadAck waits up to d for the next datagram on the ACK port and reads
// it into b.
func (c *Client) ReadAck(b []byte, d time.Duration) (int, error) {
	c.conn.SetReadDeadline(time.Now().Add(d))
	n, _, err := c.conn.ReadFrom(b)
	return n, err
}

func (c *Client) send(to netip.AddrPort, msgs []Msg) error {
	if len(msgs) > MaxInFlight {
		return fmt.Errorf("servertest: %d messages in one batch", len(msgs))
	}
	total := 0
	for _, m := range msgs {
		total += wire.HeaderSize + len(m.Payload)
	}
	if cap(c.slab) < total {
		c.slab = make([]byte, total)
	}
	slab := c.slab[:total]
	for i, m := range msgs {
		b, err := wire.AppendMessage(slab, wire.Header{Type: m.Type, Seqno: c.seq + uint32(i), Offset: m.Offset, Aux2: m.Aux2}, m.Payload)
		if err != nil {
			return err
		}
		c.pkts[i] = b
		slab = slab[len(b):]
	}
	want := uint64(1)<<len(msgs) - 1
	if len(msgs) == MaxInFlight {
		want = ^uint64(0)
	}
	var got uint64
	for round := 0; round <= c.Retries; round++ {
		for i := range msgs {
			if got&(1<<i) == 0 {
				if err := c.conn.WriteTo(c.pkts[i], to); err != nil {
					return err
				}
			}
		}
		c.conn.SetReadDeadline(time.Now().Add(c.RTO))
		for got != want {
			n, from, err := c.conn.ReadFrom(c.rbuf[:])
			if err != nil {
				break // retransmit
			}
			if from.Addr() != c.herald.Addr() {
				continue
			}
			a, err := wire.ParseAcks(c.rbuf[:n])
			if err != nil {
				continue
			}
			for i := range a.Len() {
				if d := a.Seqno(i) - c.seq; d < uint32(len(msgs)) {
					got |= 1 << d
				}
			}
			c.AckDatagrams++
			if !c.data.IsValid() {
				c.data = from
			}
		}
		if got == want {
			c.seq += uint32(len(msgs))
			return nil
		}
	}
	return ErrTimeout
}

// Lossy wraps conn so that each datagram sent or received is lost with
// probability p, pseudo-randomly from seed, as on a bad link.
func Lossy(conn Conn, p float64, seed uint64) Conn {
	return &lossy{Conn: conn, p: p, r: rand.New(rand.NewPCG(seed, 0x105e))}
}

type lossy struct {
	Conn
	p  float64
	mu sync.Mutex
	r  *rand.Rand
}

func (l *lossy) lose() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.r.Float64() < l.p
}

func (l *lossy) WriteTo(b []byte, to netip.AddrPort) error {
	if l.lose() {
		return nil
	}
	return l.Conn.WriteTo(b, to)
}

func (l *lossy) ReadFrom(b []byte) (int, netip.AddrPort, error) {
	for {
		n, from, err := l.Conn.ReadFrom(b)
		if err != nil || !l.lose() {
			return n, from, err
		}
	}
}
