// Package transport is the netdump server's view of UDP: a socket that
// receives HERALDs and tells where each was sent, and connected
// per-client sockets. OSNetwork is the host's; qemu/usernet has one on a
// user-space stack. It is apart from the server so that a user of the
// sockets does not link the server.
package transport

import (
	"errors"
	"net"
	"net/netip"
	"strconv"
	"time"

	"golang.org/x/net/ipv4"
	"golang.org/x/net/ipv6"
)

// Network supplies the server's UDP sockets, so the same server runs on
// the host's sockets (OSNetwork) or on a user-space stack.
type Network interface {
	// ListenHerald opens the socket HERALDs arrive on. A zero port asks
	// for any free port (HeraldConn.Addr reports it).
	ListenHerald(addr netip.AddrPort) (HeraldConn, error)
	// DialClient opens a per-client socket bound to local on a free port
	// and connected to remote: it only receives datagrams from remote,
	// and its writes come from local, which is what the client checks.
	DialClient(local netip.Addr, remote netip.AddrPort) (ClientConn, error)
}

// HeraldConn is the listening socket.
type HeraldConn interface {
	// ReadHerald reads one datagram into b (truncating it if longer) and
	// reports its source and the address it was sent to.
	ReadHerald(b []byte) (n int, src netip.AddrPort, dst netip.Addr, err error)
	// Addr is the bound address.
	Addr() netip.AddrPort
	Close() error
}

// ClientConn is a connected per-client socket. *net.UDPConn is one.
type ClientConn interface {
	Read(b []byte) (int, error)
	Write(b []byte) (int, error)
	SetReadDeadline(t time.Time) error
	SetReadBuffer(bytes int) error
	Close() error
}

// OSNetwork is Network on the host's UDP sockets, IPv4 and IPv6.
type OSNetwork struct{}

// ListenHerald binds addr. The destination address of each datagram comes
// from IP_PKTINFO (IPV6_PKTINFO), or is the bound address when that is not
// the wildcard. The IPv6 wildcard listens on both families (IPv4 clients
// arrive as mapped addresses, reported unmapped); where the host has no
// IPv6 it falls back to the IPv4 wildcard.
func (OSNetwork) ListenHerald(addr netip.AddrPort) (HeraldConn, error) {
	if addr.Addr().Is6() {
		c, err := net.ListenUDP("udp", net.UDPAddrFromAddrPort(addr))
		if err == nil || !addr.Addr().IsUnspecified() {
			if err != nil {
				return nil, err
			}
			return newHerald(c, func(h *osHerald) error {
				h.pc6 = ipv6.NewPacketConn(c)
				return h.pc6.SetControlMessage(ipv6.FlagDst|ipv6.FlagInterface, true)
			})
		}
		addr = netip.AddrPortFrom(netip.IPv4Unspecified(), addr.Port())
	}
	c, err := net.ListenUDP("udp4", net.UDPAddrFromAddrPort(addr))
	if err != nil {
		return nil, err
	}
	return newHerald(c, func(h *osHerald) error {
		h.pc = ipv4.NewPacketConn(c)
		return h.pc.SetControlMessage(ipv4.FlagDst, true)
	})
}

func newHerald(c *net.UDPConn, control func(*osHerald) error) (HeraldConn, error) {
	// Bursts of HERALDs (many hosts panicking at once) should queue, not
	// drop; best effort, capped by net.core.rmem_max.
	c.SetReadBuffer(1 << 20)
	bound := c.LocalAddr().(*net.UDPAddr).AddrPort()
	h := &osHerald{c: c, addr: netip.AddrPortFrom(bound.Addr().Unmap(), bound.Port())}
	if err := control(h); err != nil && h.addr.Addr().IsUnspecified() {
		c.Close()
		return nil, err
	}
	return h, nil
}

// DialClient binds local:0 and connects to remote. The socket is a
// BatchConn.
func (OSNetwork) DialClient(local netip.Addr, remote netip.AddrPort) (ClientConn, error) {
	network := "udp4"
	if local.Is6() {
		network = "udp6"
	}
	c, err := net.DialUDP(network, net.UDPAddrFromAddrPort(netip.AddrPortFrom(local, 0)), net.UDPAddrFromAddrPort(remote))
	if err != nil {
		return nil, err
	}
	return newOSClient(c), nil
}

type osHerald struct {
	c    *net.UDPConn
	pc   *ipv4.PacketConn // an IPv4 socket's, or
	pc6  *ipv6.PacketConn // an IPv6 one's
	addr netip.AddrPort
}

var errNoDst = errors.New("no destination address in the control message")

func (h *osHerald) ReadHerald(b []byte) (int, netip.AddrPort, netip.Addr, error) {
	var (
		n     int
		dstIP net.IP
		ifx   int
		src   net.Addr
		err   error
	)
	if h.pc6 != nil {
		var cm *ipv6.ControlMessage
		n, cm, src, err = h.pc6.ReadFrom(b)
		if cm != nil {
			dstIP, ifx = cm.Dst, cm.IfIndex
		}
	} else {
		var cm *ipv4.ControlMessage
		n, cm, src, err = h.pc.ReadFrom(b)
		if cm != nil {
			dstIP = cm.Dst
		}
	}
	if err != nil {
		return 0, netip.AddrPort{}, netip.Addr{}, err
	}
	ua, _ := src.(*net.UDPAddr)
	if ua == nil {
		return 0, netip.AddrPort{}, netip.Addr{}, errNoDst
	}
	sap := ua.AddrPort()
	sap = netip.AddrPortFrom(sap.Addr().Unmap(), sap.Port())
	dst := h.addr.Addr()
	if !dst.IsUnspecified() {
		return n, sap, dst, nil
	}
	d, ok := netip.AddrFromSlice(dstIP)
	if !ok {
		return n, sap, netip.Addr{}, errNoDst
	}
	d = d.Unmap()
	if d.Is6() && d.IsLinkLocalUnicast() && ifx != 0 {
		// A link-local address is bound with its interface.
		d = d.WithZone(strconv.Itoa(ifx))
	}
	return n, sap, d, nil
}

func (h *osHerald) Addr() netip.AddrPort { return h.addr }
func (h *osHerald) Close() error         { return h.c.Close() }
