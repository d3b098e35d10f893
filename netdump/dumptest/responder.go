package dumptest

import (
	"encoding/binary"
	"net/netip"

	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/header"

	"github.com/tamadump/tamadump/debugnet/linktest"
	"github.com/tamadump/tamadump/netdump/wire"
)

// ServerMAC is the MAC the Responder answers with.
var ServerMAC = [6]byte{0x02, 0, 0, 0, 9, 1}

// Frame builds an Ethernet frame holding an IPv4/UDP datagram (UDP
// checksum 0: none) into b, using gVisor's header views.
func Frame(b []byte, src, dst [6]byte, srcIP, dstIP netip.Addr, sport, dport uint16, payload []byte) []byte {
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

// ARPFrame builds an ARP packet in an Ethernet frame into b.
func ARPFrame(b []byte, op header.ARPOp, src, dst [6]byte, senderIP, targetIP netip.Addr) []byte {
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

// Responder is a netdump server reduced to its ACKs, answering in place
// from preallocated buffers, so a whole dump can run with nothing else
// allocating in the process.
type Responder struct {
	link  *linktest.Link
	out   [128]byte
	ack   [4]byte
	port  uint16
	Bytes uint64 // payload bytes received
	Msgs  uint64 // messages received
	// Lists answers each message after a HERALD's with an ACK list: its
	// seqno fresh, the one before it repeated (tamadump's netdumpd when
	// each read holds one datagram).
	Lists bool
	prev  [4]byte
	list  [12]byte
}

// NewResponder makes a test link whose far end is a Responder.
func NewResponder(mtu int) (*linktest.Link, *Responder) {
	l := linktest.New(ClientMAC, mtu, 1024, linktest.Faults{})
	r := &Responder{link: l, port: 31000}
	l.Attach(r.input)
	return l, r
}

func (r *Responder) input(f []byte) {
	eth := header.Ethernet(f)
	switch eth.Type() {
	case header.ARPProtocolNumber:
		a := header.ARP(f[header.EthernetMinimumSize:])
		if a.Op() == header.ARPRequest {
			r.link.Deliver(ARPFrame(r.out[:], header.ARPReply, ServerMAC, ClientMAC, ServerPrefix.Addr(), ClientAddr))
		}
	case header.IPv4ProtocolNumber:
		ip := header.IPv4(f[header.EthernetMinimumSize:])
		u := header.UDP(ip.Payload())
		h, payload, err := wire.ParseMessage(u.Payload())
		if err != nil {
			return
		}
		r.Msgs++
		r.Bytes += uint64(len(payload))
		binary.BigEndian.PutUint32(r.ack[:], h.Seqno)
		ack := r.ack[:]
		if r.Lists && h.Type != wire.Herald {
			n, _ := wire.PutAckList(r.list[:], r.ack[:], r.prev[:])
			ack = r.list[:n]
		}
		r.prev = r.ack
		r.link.Deliver(Frame(r.out[:], ServerMAC, ClientMAC, ServerPrefix.Addr(), ClientAddr, r.port, wire.ClientPort, ack))
	}
}
