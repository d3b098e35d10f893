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
	"time"

	"golang.org/x/net/ipv4"
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

// OSNetwork is Network on the host's IPv4 UDP sockets.
type OSNetwork struct{}

// ListenHerald binds addr. The destination address of each datagram comes
// from IP_PKTINFO, or is the bound address when that is not the wildcard.
func (OSNetwork) ListenHerald(addr netip.AddrPort) (HeraldConn, error) {
	c, err := net.ListenUDP("udp4", net.UDPAddrFromAddrPort(addr))
	if err != nil {
		return nil, err
	}
	// Bursts of HERALDs (many hosts panicking at once) should queue, not
	// drop; best effort, capped by net.core.rmem_max.
	c.SetReadBuffer(1 << 20)
	bound := c.LocalAddr().(*net.UDPAddr).AddrPort()
	h := &osHerald{c: c, pc: ipv4.NewPacketConn(c), addr: netip.AddrPortFrom(bound.Addr().Unmap(), bound.Port())}
	if err := h.pc.SetControlMessage(ipv4.FlagDst, true); err != nil && h.addr.Addr().IsUnspecified() {
		c.Close()
		return nil, err
	}
	return h, nil
}

// DialClient binds local:0 and connects to remote. The socket is a
// BatchConn.
func (OSNetwork) DialClient(local netip.Addr, remote netip.AddrPort) (ClientConn, error) {
	c, err := net.DialUDP("udp4", net.UDPAddrFromAddrPort(netip.AddrPortFrom(local, 0)), net.UDPAddrFromAddrPort(remote))
	if err != nil {
		return nil, err
	}
	return newOSClient(c), nil
}

type osHerald struct {
	c    *net.UDPConn
	pc   *ipv4.PacketConn
	addr netip.AddrPort
}

var errNoDst = errors.New("no destination address in the control message")

func (h *osHerald) ReadHerald(b []byte) (int, netip.AddrPort, netip.Addr, error) {
	n, cm, src, err := h.pc.ReadFrom(b)
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
	if cm == nil || cm.Dst == nil {
		return n, sap, netip.Addr{}, errNoDst
	}
	d, ok := netip.AddrFromSlice(cm.Dst)
	if !ok {
		return n, sap, netip.Addr{}, errNoDst
	}
	return n, sap, d.Unmap(), nil
}

func (h *osHerald) Addr() netip.AddrPort { return h.addr }
func (h *osHerald) Close() error         { return h.c.Close() }
