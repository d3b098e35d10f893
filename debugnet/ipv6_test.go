package debugnet

import (
	"bytes"
	"errors"
	"net"
	"net/netip"
	"runtime"
	"strings"
	"testing"
	"time"

	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/checksum"
	"gvisor.dev/gvisor/pkg/tcpip/header"

	"github.com/tamadump/tamadump/debugnet/linktest"
	"github.com/tamadump/tamadump/qemu/usernet"
)

var (
	our6    = netip.MustParseAddr("fd00:25::2")
	host6   = netip.MustParsePrefix("fd00:25::1/64")
	far6    = netip.MustParseAddr("fd00:99::1") // beyond the router
	router6 = netip.MustParseAddr("fe80::fe")
)

// v6Host is gVisor's IPv6 host on the other end of a test link: its
// neighbour discovery solicits and answers ours.
func v6Host(t *testing.T) (*usernet.Stack, *linktest.Link) {
	t.Helper()
	st, err := usernet.New(usernet.Config{Addr: netip.MustParsePrefix("127.0.25.1/24"), Addr6: host6})
	if err != nil {
		t.Fatal(err)
	}
	link := linktest.New(ourMAC, 1500, 256, linktest.Faults{})
	link.Attach(st.Inject)
	st.Attach(link.Deliver)
	t.Cleanup(func() { link.Close(); st.Close() })
	return st, link
}

// exchange sends "ping" from c to server:20023 on the host, which answers
// "pong" from there; it returns the source the host saw.
func exchange(t *testing.T, st *usernet.Stack, server netip.Addr, c *Conn, got *[]byte) netip.AddrPort {
	t.Helper()
	conn, err := st.ListenUDPOn(server, 20023)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if err := c.Connect(); err != nil {
		t.Fatalf("connect to %v: %v", server, err)
	}
	if c.PeerMAC() != [6]byte(st.MAC()) {
		t.Fatalf("peer MAC %x, want the host's %x", c.PeerMAC(), st.MAC())
	}
	copy(c.Payload(), "ping")
	if err := c.Send(20023, 4); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 64)
	conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	n, from, err := conn.ReadFrom(buf)
	if err != nil || string(buf[:n]) != "ping" {
		t.Fatalf("host read %q, %v", buf[:n], err)
	}
	if _, err := conn.WriteTo([]byte("pong"), from); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(5 * time.Second); string(*got) != "pong"; {
		if c.PollOnce() == 0 {
			runtime.Gosched()
		}
		if time.Now().After(deadline) {
			t.Fatalf("no answer from the host (it has to solicit our MAC first)")
		}
	}
	return from.(*net.UDPAddr).AddrPort()
}

// Both ways across gVisor's IPv6: we solicit the host, it solicits us
// (for its answer) and we answer, and the checksums hold on both sides.
func TestIPv6WithGVisor(t *testing.T) {
	for _, tc := range []struct {
		name    string
		server  func(*usernet.Stack) netip.Addr
		wantSrc func(*Conn) netip.Addr
	}{
		{"global", func(s *usernet.Stack) netip.Addr { return s.Addr6() }, func(*Conn) netip.Addr { return our6 }},
		{"link-local", func(s *usernet.Stack) netip.Addr { return s.LinkLocal6() },
			func(c *Conn) netip.Addr { return netip.AddrFrom16(linkLocal(c.mac).As16()) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			st, link := v6Host(t)
			var got []byte
			c, err := New(link, Config{Client: our6, Server: tc.server(st), ClientPort: 20024, Idle: runtime.Gosched},
				func(port uint16, p []byte) { got = append(got[:0], p...) })
			if err != nil {
				t.Fatal(err)
			}
			if !c.IPv6() || c.MaxPayload() != 1500-40-8 {
				t.Fatalf("IPv6 %v, max payload %d", c.IPv6(), c.MaxPayload())
			}
			from := exchange(t, st, tc.server(st), c, &got)
			if from.Addr().WithZone("") != tc.wantSrc(c) || from.Port() != 20024 {
				t.Fatalf("host saw the datagram from %v, want %v", from, tc.wantSrc(c))
			}
		})
	}
}

// router answers neighbour solicitations for router6 only and records
// every frame.
type router struct {
	link   *linktest.Link
	frames [][]byte
}

func (r *router) input(f []byte) {
	r.frames = append(r.frames, append([]byte(nil), f...))
	eth := header.Ethernet(f)
	if eth.Type() != header.IPv6ProtocolNumber {
		return
	}
	ip := header.IPv6(f[header.EthernetMinimumSize:])
	icmp := header.ICMPv6(ip.Payload())
	if ip.TransportProtocol() != header.ICMPv6ProtocolNumber || icmp.Type() != header.ICMPv6NeighborSolicit ||
		header.NDPNeighborSolicit(icmp.MessageBody()).TargetAddress() != tcpip.AddrFrom16(router6.As16()) {
		return
	}
	r.link.Deliver(ndFrame(header.ICMPv6NeighborAdvert, gwMAC, ourMAC, router6, ip.SourceAddress(), router6, true))
}

// ndFrame builds an NS or NA from mac about target, with mac as its
// link-layer option.
func ndFrame(typ header.ICMPv6Type, src, dst [6]byte, srcIP netip.Addr, dstIP tcpip.Address, target netip.Addr, option bool) []byte {
	n := header.ICMPv6NeighborAdvertMinimumSize
	if option {
		n += 8
	}
	f := make([]byte, header.EthernetMinimumSize+header.IPv6MinimumSize+n)
	header.Ethernet(f).Encode(&header.EthernetFields{SrcAddr: tcpip.LinkAddress(src[:]), DstAddr: tcpip.LinkAddress(dst[:]), Type: header.IPv6ProtocolNumber})
	header.IPv6(f[header.EthernetMinimumSize:]).Encode(&header.IPv6Fields{PayloadLength: uint16(n), TransportProtocol: header.ICMPv6ProtocolNumber,
		HopLimit: 255, SrcAddr: tcpip.AddrFrom16(srcIP.As16()), DstAddr: dstIP})
	icmp := header.ICMPv6(f[header.EthernetMinimumSize+header.IPv6MinimumSize:])
	icmp.SetType(typ)
	body := icmp.MessageBody()
	if typ == header.ICMPv6NeighborAdvert {
		na := header.NDPNeighborAdvert(body)
		na.SetTargetAddress(tcpip.AddrFrom16(target.As16()))
		na.SetSolicitedFlag(true)
		if option {
			copy(body[20:], []byte{2, 1})
		}
	} else {
		header.NDPNeighborSolicit(body).SetTargetAddress(tcpip.AddrFrom16(target.As16()))
		if option {
			copy(body[20:], []byte{1, 1})
		}
	}
	if option {
		copy(body[22:28], src[:])
	}
	icmp.SetChecksum(header.ICMPv6Checksum(header.ICMPv6ChecksumParams{Header: icmp, Src: tcpip.AddrFrom16(srcIP.As16()), Dst: dstIP}))
	return f
}

// udp6Frame is a datagram from srcIP:20023 to dstIP:20024; sum false
// leaves its checksum 0.
func udp6Frame(src, dst [6]byte, srcIP, dstIP netip.Addr, payload []byte, sum bool) []byte {
	f := make([]byte, hdr6Len+len(payload))
	header.Ethernet(f).Encode(&header.EthernetFields{SrcAddr: tcpip.LinkAddress(src[:]), DstAddr: tcpip.LinkAddress(dst[:]), Type: header.IPv6ProtocolNumber})
	s, d := tcpip.AddrFrom16(srcIP.As16()), tcpip.AddrFrom16(dstIP.As16())
	header.IPv6(f[ethLen:]).Encode(&header.IPv6Fields{PayloadLength: uint16(udpLen + len(payload)), TransportProtocol: header.UDPProtocolNumber,
		HopLimit: 64, SrcAddr: s, DstAddr: d})
	u := header.UDP(f[ethLen+ip6Len:])
	u.Encode(&header.UDPFields{SrcPort: 20023, DstPort: 20024, Length: uint16(udpLen + len(payload))})
	copy(f[hdr6Len:], payload)
	if sum {
		x := header.PseudoHeaderChecksum(header.UDPProtocolNumber, s, d, uint16(udpLen+len(payload)))
		u.SetChecksum(^u.CalculateChecksum(checksum.Checksum(payload, x)))
	}
	return f
}

// A server beyond the link: its solicitation goes unanswered, the
// router's is answered, and the datagrams go to the router's MAC with the
// server's address.
func TestIPv6Router(t *testing.T) {
	link := linktest.New(ourMAC, 1500, 64, linktest.Faults{})
	r := &router{link: link}
	link.Attach(r.input)
	var console strings.Builder
	c, err := New(link, Config{Client: our6, Server: far6, Gateway: router6, ClientPort: 20024, Polls: 10, ARPRetries: 2, Console: &console}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Connect(); err != nil {
		t.Fatalf("%v\n%s", err, console.String())
	}
	if c.PeerMAC() != gwMAC || strings.Count(console.String(), "(NS retry)") != 2 || !strings.Contains(console.String(), "trying to reach gateway") {
		t.Fatalf("peer %x, console:\n%s", c.PeerMAC(), console.String())
	}
	// The solicitations: to the server's solicited-node group, then the
	// router's, from the global address, then the link-local one.
	var ns []header.IPv6
	for _, f := range r.frames {
		ns = append(ns, header.IPv6(f[ethLen:]))
	}
	if len(ns) != 3 || ns[0].DestinationAddress() != solicitedNode(tcpip.AddrFrom16(far6.As16())) ||
		ns[0].SourceAddress() != tcpip.AddrFrom16(our6.As16()) ||
		ns[2].DestinationAddress() != solicitedNode(tcpip.AddrFrom16(router6.As16())) || ns[2].SourceAddress() != linkLocal(ourMAC) {
		t.Fatalf("solicitations: %d frames", len(ns))
	}
	if dst := header.Ethernet(r.frames[0]).DestinationAddress(); dst != tcpip.LinkAddress([]byte{0x33, 0x33, 0xff, 0, 0, 1}) {
		t.Fatalf("NS sent to %v", dst)
	}
	r.frames = nil
	copy(c.Payload(), "hi")
	if err := c.Send(20023, 2); err != nil {
		t.Fatal(err)
	}
	f := r.frames[0]
	ip := header.IPv6(f[ethLen:])
	u := header.UDP(ip.Payload())
	if header.Ethernet(f).DestinationAddress() != tcpip.LinkAddress(gwMAC[:]) || ip.DestinationAddress() != tcpip.AddrFrom16(far6.As16()) ||
		ip.HopLimit() != 255 || u.Checksum() == 0 || !u.IsChecksumValid(ip.SourceAddress(), ip.DestinationAddress(), checksumOf(u.Payload())) {
		t.Fatal("datagram not sent through the router, or its checksum wrong")
	}
}

// Receiving: a datagram without the mandatory checksum, or with a wrong
// one, is dropped; the same datagram with it arrives (the control).
// Answering a solicitation neither allocates nor goes unanswered.
func TestIPv6Input(t *testing.T) {
	link := linktest.New(ourMAC, 1500, 64, linktest.Faults{})
	var out [][]byte
	link.Attach(func(f []byte) { out = append(out, append([]byte(nil), f...)) })
	got := 0
	c, err := New(link, Config{Client: our6, Server: host6.Addr(), ClientPort: 20024}, func(uint16, []byte) { got++ })
	if err != nil {
		t.Fatal(err)
	}
	srv := [6]byte{2, 0, 0, 0, 0, 7}
	bad := udp6Frame(srv, ourMAC, host6.Addr(), our6, []byte{0, 0, 0, 1}, true)
	bad[len(bad)-1] ^= 1
	for _, f := range [][]byte{
		udp6Frame(srv, ourMAC, host6.Addr(), our6, []byte{0, 0, 0, 1}, false),
		bad,
		udp6Frame(srv, ourMAC, far6, our6, []byte{0, 0, 0, 1}, true),             // not the server
		udp6Frame(srv, [6]byte{2, 9, 9, 9, 9, 9}, host6.Addr(), our6, nil, true), // not our MAC
	} {
		c.input(f)
	}
	if got != 0 {
		t.Fatalf("%d bad datagrams reached the handler", got)
	}
	c.input(udp6Frame(srv, ourMAC, host6.Addr(), our6, []byte{0, 0, 0, 1}, true))
	if got != 1 {
		t.Fatal("control: the good datagram did not arrive")
	}

	// An NS for our address, to our solicited-node group, with and
	// without a link-layer option; and one for another address.
	group := solicitedNode(tcpip.AddrFrom16(our6.As16()))
	gmac := multicastMAC(group)
	link.Attach(nil)
	link.Deliver(ndFrame(header.ICMPv6NeighborSolicit, srv, gmac, host6.Addr(), group, our6, true))
	n := testing.AllocsPerRun(1, func() { c.PollOnce() })
	if n != 0 {
		t.Errorf("answering a solicitation allocated %v times", n)
	}
	link.Attach(func(f []byte) { out = append(out, append([]byte(nil), f...)) })
	for _, f := range [][]byte{
		ndFrame(header.ICMPv6NeighborSolicit, srv, gmac, host6.Addr(), group, our6, false),
		ndFrame(header.ICMPv6NeighborSolicit, srv, gmac, host6.Addr(), group, far6, true),
	} {
		c.input(f)
	}
	if len(out) != 1 {
		t.Fatalf("%d answers, want 1 (to the NS for us)", len(out))
	}
	na := header.ICMPv6(header.IPv6(out[0][ethLen:]).Payload())
	if na.Type() != header.ICMPv6NeighborAdvert || header.NDPNeighborAdvert(na.MessageBody()).TargetAddress() != tcpip.AddrFrom16(our6.As16()) ||
		!header.NDPNeighborAdvert(na.MessageBody()).SolicitedFlag() || !bytes.Equal(out[0][:6], srv[:]) {
		t.Fatal("bad neighbour advertisement")
	}
	// The control for the allocation count: a handler that allocates is
	// seen by the same measurement.
	var sink []byte
	c.handler = func(uint16, []byte) { sink = make([]byte, 16) }
	good := udp6Frame(srv, ourMAC, host6.Addr(), our6, []byte{0, 0, 0, 1}, true)
	if n := testing.AllocsPerRun(10, func() { c.input(good) }); n == 0 {
		t.Error("control: an allocating handler went unseen")
	}
	_ = sink
	link.Attach(nil)
	if err := c.SetAddrs(our6, host6.Addr(), netip.Addr{}); err != nil {
		t.Fatal(err)
	}
	c.peerMAC, c.resolved = srv, true
	if n := testing.AllocsPerRun(100, func() { c.Send(20023, 1000) }); n != 0 {
		t.Errorf("Send on IPv6 allocated %v times", n)
	}
	if n := testing.AllocsPerRun(100, func() { c.SetAddrs(our6, far6, router6) }); n != 0 {
		t.Errorf("SetAddrs on IPv6 allocated %v times", n)
	}
}

func TestIPv6ConfigErrors(t *testing.T) {
	link := linktest.New(ourMAC, 1500, 4, linktest.Faults{})
	for _, tc := range []struct {
		cfg  Config
		want error
	}{
		{Config{Client: our6, Server: srvIP, ClientPort: 1}, ErrFamily},
		{Config{Client: our6, Server: far6, Gateway: gwIP, ClientPort: 1}, ErrFamily},
		{Config{Client: netip.MustParseAddr("fe80::2"), Server: far6, ClientPort: 1}, ErrScope},
	} {
		if _, err := New(link, tc.cfg, nil); !errors.Is(err, tc.want) {
			t.Errorf("New(%+v): %v, want %v", tc.cfg, err, tc.want)
		}
	}
	if _, err := New(link, Config{Client: netip.MustParseAddr("fe80::2"), Server: netip.MustParseAddr("fe80::1"), ClientPort: 1}, nil); err != nil {
		t.Errorf("link-local to link-local: %v", err)
	}
}

// FuzzInputIPv6 feeds arbitrary frames to an IPv6 endpoint that is
// resolving its server: nothing may panic, only checksummed datagrams from
// the server reach the handler, and whatever it answers is a well-formed
// neighbour advertisement.
func FuzzInputIPv6(f *testing.F) {
	link := linktest.New(ourMAC, 1500, 4, linktest.Faults{})
	link.Attach(func(out []byte) {
		ip := header.IPv6(out[ethLen:])
		icmp := header.ICMPv6(ip.Payload())
		if len(out) != ndLen || ip.HopLimit() != 255 || icmp.Type() != header.ICMPv6NeighborAdvert {
			panic("answered with something but a neighbour advertisement")
		}
	})
	c, err := New(link, Config{Client: our6, Server: host6.Addr(), ClientPort: 20024}, func(port uint16, p []byte) {
		if len(p) > 1500 {
			panic("payload longer than the MTU")
		}
	})
	if err != nil {
		f.Fatal(err)
	}
	c.arpTarget = c.server // as while resolving: advertisements are parsed too
	srv := [6]byte{2, 0, 0, 0, 0, 7}
	group := solicitedNode(tcpip.AddrFrom16(our6.As16()))
	f.Add([]byte{})
	f.Add(udp6Frame(srv, ourMAC, host6.Addr(), our6, []byte{0, 0, 0, 1}, true))
	f.Add(udp6Frame(srv, ourMAC, host6.Addr(), our6, nil, false))
	f.Add(ndFrame(header.ICMPv6NeighborSolicit, srv, multicastMAC(group), host6.Addr(), group, our6, true))
	f.Add(ndFrame(header.ICMPv6NeighborAdvert, srv, ourMAC, host6.Addr(), tcpip.AddrFrom16(our6.As16()), host6.Addr(), true))
	f.Add(ndFrame(header.ICMPv6NeighborAdvert, srv, ourMAC, host6.Addr(), tcpip.AddrFrom16(our6.As16()), host6.Addr(), false))
	f.Fuzz(func(t *testing.T, frame []byte) {
		c.input(frame)
	})
}
