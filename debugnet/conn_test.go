package debugnet

import (
	"bytes"
	"net/netip"
	"strings"
	"testing"

	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/header"

	"github.com/tamadump/tamadump/debugnet/linktest"
)

var (
	ourMAC  = [6]byte{2, 0, 0, 0, 0, 1}
	gwMAC   = [6]byte{2, 0, 0, 0, 0, 0xfe}
	ourIP   = netip.MustParseAddr("127.0.7.2")
	srvIP   = netip.MustParseAddr("127.0.8.1") // beyond the gateway
	gwIP    = netip.MustParseAddr("127.0.7.254")
	askerIP = netip.MustParseAddr("127.0.7.9")
)

// gateway answers ARP for gwIP only and records every other frame.
type gateway struct {
	link   *linktest.Link
	frames [][]byte
}

func (g *gateway) input(f []byte) {
	g.frames = append(g.frames, append([]byte(nil), f...))
	if header.Ethernet(f).Type() != header.ARPProtocolNumber {
		return
	}
	a := header.ARP(f[header.EthernetMinimumSize:])
	if a.Op() != header.ARPRequest || !bytes.Equal(a.ProtocolAddressTarget(), gwIP.AsSlice()) {
		return
	}
	r := make([]byte, 60)
	header.Ethernet(r).Encode(&header.EthernetFields{SrcAddr: tcpip.LinkAddress(gwMAC[:]), DstAddr: tcpip.LinkAddress(ourMAC[:]), Type: header.ARPProtocolNumber})
	ra := header.ARP(r[header.EthernetMinimumSize:])
	ra.SetIPv4OverEthernet()
	ra.SetOp(header.ARPReply)
	copy(ra.HardwareAddressSender(), gwMAC[:])
	copy(ra.ProtocolAddressSender(), gwIP.AsSlice())
	copy(ra.HardwareAddressTarget(), ourMAC[:])
	copy(ra.ProtocolAddressTarget(), ourIP.AsSlice())
	g.link.Deliver(r)
}

func TestGatewayAndFraming(t *testing.T) {
	link := linktest.New(ourMAC, 1500, 64, linktest.Faults{})
	g := &gateway{link: link}
	link.Attach(g.input)
	var console strings.Builder
	c, err := New(link, Config{Client: ourIP, Server: srvIP, Gateway: gwIP, ClientPort: 20024, Polls: 10, ARPRetries: 2, Console: &console}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Send(20023, 1); err != ErrNotResolved {
		t.Fatalf("send before Connect: %v", err)
	}
	if err := c.Connect(); err != nil {
		t.Fatalf("connect: %v\n%s", err, console.String())
	}
	if c.PeerMAC() != gwMAC || !strings.Contains(console.String(), "trying to reach gateway") {
		t.Fatalf("peer %x, console:\n%s", c.PeerMAC(), console.String())
	}
	g.frames = nil
	copy(c.Payload(), "hi")
	if err := c.Send(20023, 2); err != nil {
		t.Fatal(err)
	}
	f := g.frames[0]
	if len(f) != 60 {
		t.Fatalf("frame of %d bytes, want padded to 60", len(f))
	}
	ip := header.IPv4(f[header.EthernetMinimumSize:])
	u := header.UDP(ip.Payload())
	if !ip.IsChecksumValid() || ip.Flags()&header.IPv4FlagDontFragment == 0 || ip.TTL() != 255 || ip.ID() != 0 {
		t.Fatalf("IPv4 header: flags %d ttl %d id %d", ip.Flags(), ip.TTL(), ip.ID())
	}
	if ip.DestinationAddress() != tcpip.AddrFrom4(srvIP.As4()) || header.Ethernet(f).DestinationAddress() != tcpip.LinkAddress(gwMAC[:]) {
		t.Fatal("not addressed to the server through the gateway")
	}
	if u.SourcePort() != 20024 || u.DestinationPort() != 20023 || string(u.Payload()) != "hi" ||
		!u.IsChecksumValid(ip.SourceAddress(), ip.DestinationAddress(), checksumOf(u.Payload())) {
		t.Fatal("UDP header or checksum wrong")
	}
	if err := c.Send(20023, c.MaxPayload()+1); err != ErrTooBig {
		t.Fatalf("oversized: %v", err)
	}

	// Someone asks for our address: we answer.
	g.frames = nil
	req := make([]byte, 60)
	asker := [6]byte{2, 0, 0, 0, 0, 9}
	header.Ethernet(req).Encode(&header.EthernetFields{SrcAddr: tcpip.LinkAddress(asker[:]), DstAddr: header.EthernetBroadcastAddress, Type: header.ARPProtocolNumber})
	a := header.ARP(req[header.EthernetMinimumSize:])
	a.SetIPv4OverEthernet()
	a.SetOp(header.ARPRequest)
	copy(a.HardwareAddressSender(), asker[:])
	copy(a.ProtocolAddressSender(), askerIP.AsSlice())
	copy(a.ProtocolAddressTarget(), ourIP.AsSlice())
	link.Deliver(req)
	allocs := testing.AllocsPerRun(1, func() { c.PollOnce() })
	if len(g.frames) != 1 {
		t.Fatalf("%d frames in answer to an ARP request", len(g.frames))
	}
	r := header.ARP(g.frames[0][header.EthernetMinimumSize:])
	if r.Op() != header.ARPReply || !bytes.Equal(r.HardwareAddressSender(), ourMAC[:]) || !bytes.Equal(r.ProtocolAddressTarget(), askerIP.AsSlice()) {
		t.Fatal("bad ARP reply")
	}
	if allocs != 0 {
		t.Errorf("answering ARP allocated %v times", allocs)
	}
	link.Attach(nil) // the recording peer allocates; Send itself must not
	if n := testing.AllocsPerRun(100, func() { c.Send(20023, 1000) }); n != 0 {
		t.Errorf("Send allocated %v times", n)
	}
}

func TestNoAnswer(t *testing.T) {
	link := linktest.New(ourMAC, 1500, 64, linktest.Faults{})
	var console strings.Builder
	c, _ := New(link, Config{Client: ourIP, Server: srvIP, ClientPort: 20024, Polls: 5, ARPRetries: 3, Console: &console}, nil)
	if err := c.Connect(); err != ErrNoARP {
		t.Fatalf("connect with nobody there: %v", err)
	}
	if n := strings.Count(console.String(), "(ARP retry)"); n != 3 {
		t.Fatalf("%d ARP retries:\n%s", n, console.String())
	}
}

func TestConfigErrors(t *testing.T) {
	link := linktest.New(ourMAC, 1500, 4, linktest.Faults{})
	for _, cfg := range []Config{
		{Client: netip.MustParseAddr("::1"), Server: srvIP, ClientPort: 1},
		{Client: ourIP, Server: srvIP},
		{Client: ourIP, Server: srvIP, Gateway: netip.MustParseAddr("fe80::1"), ClientPort: 1},
	} {
		if _, err := New(link, cfg, nil); err == nil {
			t.Errorf("New(%+v) accepted", cfg)
		}
	}
}
