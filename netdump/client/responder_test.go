package client

import (
	"encoding/binary"
	"net/netip"
	"runtime"
	"runtime/debug"
	"strings"
	"testing"
	"time"

	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/header"

	"github.com/tamadump/tamadump/debugnet/linktest"
	"github.com/tamadump/tamadump/netdump/wire"
)

var serverMAC = [6]byte{0x02, 0, 0, 0, 9, 1}

// frame builds an Ethernet frame holding an IPv4/UDP datagram (UDP
// checksum 0: none) into b, using gVisor's header views.
func frame(b []byte, src, dst [6]byte, srcIP, dstIP netip.Addr, sport, dport uint16, payload []byte) []byte {
	const hl = header.EthernetMinimumSize + header.IPv4MinimumSize + header.UDPMinimumSize
	n := hl + len(payload)
	b = b[:max(n, 60)]
	clear(b)
	header.Ethernet(b).Encode(&header.EthernetFields{SrcAddr: tcpip.LinkAddress(src[:]), DstAddr: tcpip.LinkAddress(dst[:]), Type: header.IPv4ProtocolNumber})
	ip := header.IPv4(b[header.EthernetMinimumSize:])
	ip.Encode(&header.IPv4Fields{TotalLength: uint16(n - header.EthernetMinimumSize), TTL: 64, Protocol: uint8(header.UDPProtocolNumber),
		SrcAddr: tcpip.AddrFrom4(srcIP.As4()), DstAddr: tcpip.AddrFrom4(dstIP.As4())})
	ip.SetChecksum(^ip.CalculateChecksum())
	header.UDP(b[header.EthernetMinimumSize+header.IPv4MinimumSize:]).Encode(&header.UDPFields{SrcPort: sport, DstPort: dport, Length: uint16(header.UDPMinimumSize + len(payload))})
	copy(b[hl:], payload)
	return b
}

func arpFrame(b []byte, op header.ARPOp, src, dst [6]byte, senderIP, targetIP netip.Addr) []byte {
	b = b[:60]
	clear(b)
	header.Ethernet(b).Encode(&header.EthernetFields{SrcAddr: tcpip.LinkAddress(src[:]), DstAddr: tcpip.LinkAddress(dst[:]), Type: header.ARPProtocolNumber})
	a := header.ARP(b[header.EthernetMinimumSize:])
	a.SetIPv4OverEthernet()
	a.SetOp(op)
	copy(a.HardwareAddressSender(), src[:])
	s4, t4 := senderIP.As4(), targetIP.As4()
	copy(a.ProtocolAddressSender(), s4[:])
	copy(a.ProtocolAddressTarget(), t4[:])
	return b
}

// responder is a netdump server reduced to its ACKs, answering in place
// from preallocated buffers, so a whole dump can run with nothing else
// allocating in the process.
type responder struct {
	link  *linktest.Link
	out   [128]byte
	ack   [4]byte
	port  uint16
	bytes uint64
	msgs  uint64
}

func newResponder(mtu int) (*linktest.Link, *responder) {
	l := linktest.New(clientMAC, mtu, 1024, linktest.Faults{})
	r := &responder{link: l, port: 31000}
	l.Attach(r.input)
	return l, r
}

func (r *responder) input(f []byte) {
	eth := header.Ethernet(f)
	switch eth.Type() {
	case header.ARPProtocolNumber:
		a := header.ARP(f[header.EthernetMinimumSize:])
		if a.Op() == header.ARPRequest {
			r.link.Deliver(arpFrame(r.out[:], header.ARPReply, serverMAC, clientMAC, serverPrefix.Addr(), clientAddr))
		}
	case header.IPv4ProtocolNumber:
		ip := header.IPv4(f[header.EthernetMinimumSize:])
		u := header.UDP(ip.Payload())
		h, payload, err := wire.ParseMessage(u.Payload())
		if err != nil {
			return
		}
		r.msgs++
		r.bytes += uint64(len(payload))
		binary.BigEndian.PutUint32(r.ack[:], h.Seqno)
		r.link.Deliver(frame(r.out[:], serverMAC, clientMAC, serverPrefix.Addr(), clientAddr, r.port, wire.ClientPort, r.ack[:]))
	}
}

func responderConfig() Config {
	return Config{Client: clientAddr, Server: serverPrefix.Addr(), Retries: 2}
}

// TestNoAllocation runs whole dumps with the garbage collector off and
// counts the process's heap allocations from start to FINISHED.
func TestNoAllocation(t *testing.T) {
	link, r := newResponder(1500)
	c, err := New(link, responderConfig())
	if err != nil {
		t.Fatal(err)
	}
	core := newBody(t, segments(2<<20, 0.5, 9), "boom")
	kdh := newKDH("boom")
	if err := c.Dump(core, kdh, 2); err != nil { // warm up: first-use paths
		t.Fatal(err)
	}
	defer debug.SetGCPercent(debug.SetGCPercent(-1))
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	for range 3 {
		if err := c.Dump(core, kdh, 2); err != nil {
			t.Fatal(err)
		}
	}
	runtime.ReadMemStats(&after)
	if d := after.Mallocs - before.Mallocs; d != 0 {
		t.Errorf("%d heap allocations during 3 dumps", d)
	}
	if r.bytes == 0 {
		t.Fatal("responder saw no data")
	}
	// And per packet: one datagram out, its ACK in.
	link2, _ := newResponder(1500)
	c2, _ := New(link2, responderConfig())
	if err := c2.conn.Connect(); err != nil {
		t.Fatal(err)
	}
	c2.body = core
	c2.base, c2.next = 1, 1
	n := testing.AllocsPerRun(1000, func() {
		if err := c2.exchange(wire.Header{Type: wire.VMCore, Offset: 4096, Len: uint32(c2.payload)}); err != nil {
			t.Fatal(err)
		}
	})
	if n != 0 {
		t.Errorf("%v allocations per acknowledged packet", n)
	}
}

// TestHostileFrames injects stray ACKs, foreign traffic and an ARP
// impostor while a dump runs: it still arrives byte-exact.
func TestHostileFrames(t *testing.T) {
	b := newTestbed(t, 1500, linktest.Faults{})
	stranger := [6]byte{0x02, 0, 0, 0, 9, 0x66}
	other := netip.MustParseAddr("127.0.9.66")
	var buf [128]byte
	var seq [4]byte
	inject := func(f []byte) { b.link.Deliver(append([]byte(nil), f...)) }
	done := make(chan struct{})
	go func() {
		for i := uint32(0); ; i++ {
			select {
			case <-done:
				return
			default:
			}
			binary.BigEndian.PutUint32(seq[:], 0xdead0000+i) // never sent
			inject(frame(buf[:], serverMAC, clientMAC, serverPrefix.Addr(), clientAddr, 20023, wire.ClientPort, seq[:]))
			binary.BigEndian.PutUint32(seq[:], i%400) // plausible, but from another host
			inject(frame(buf[:], stranger, clientMAC, other, clientAddr, 20023, wire.ClientPort, seq[:]))
			inject(frame(buf[:], serverMAC, stranger, serverPrefix.Addr(), other, 20023, wire.ClientPort, seq[:])) // for another MAC
			inject(frame(buf[:], serverMAC, clientMAC, serverPrefix.Addr(), clientAddr, 20023, 9999, seq[:]))      // another port
			inject(arpFrame(buf[:], header.ARPRequest, stranger, [6]byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}, clientAddr, serverPrefix.Addr()))
			inject(buf[:7]) // runt
			bad := frame(buf[:], serverMAC, clientMAC, serverPrefix.Addr(), clientAddr, 20023, wire.ClientPort, seq[:])
			bad[header.EthernetMinimumSize+10] ^= 0xff // IPv4 checksum broken
			inject(bad)
			time.Sleep(200 * time.Microsecond)
		}
	}()
	dumpOnce(t, b, b.config(), 1<<20, 0.2)
	close(done)
	if out := b.console.String(); !strings.Contains(out, "claims our address 127.0.9.2") {
		t.Errorf("no complaint about the ARP impostor:\n%s", out)
	}
}
