package debugnet

import (
	"net/netip"
	"unsafe"

	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/header"
)

// IPv6: the same endpoint with neighbour discovery (RFC 4861) in place of
// ARP. The endpoint has two addresses: the configured one and the
// link-local one made from its MAC (fe80::/64 with the modified EUI-64).
// It sends from the link-local one to a link-local server and from the
// configured one otherwise; it solicits the server (then the gateway, a
// router usually known by its link-local address) at its solicited-node
// multicast address, answers solicitations for either of its addresses,
// and always sets the UDP checksum, which IPv6 makes mandatory (a datagram
// without one is dropped).

const (
	ip6Len  = header.IPv6MinimumSize
	hdr6Len = ethLen + ip6Len + udpLen
	// An NS or NA with one link-layer address option.
	ndICMPLen = header.ICMPv6NeighborSolicitMinimumSize + ndOptLen
	ndLen     = ethLen + ip6Len + ndICMPLen
	ndOptLen  = 8
	// Link-layer address options (RFC 4861 4.6.1).
	optSourceLL = 1
	optTargetLL = 2
	// ND messages must arrive with hop limit 255: they were not routed.
	ndHopLimit = 255
)

// v6 is the IPv6 state of a Conn, set by SetAddrs without allocating.
type v6 struct {
	on bool
	ll tcpip.Address // our link-local address
	// src is our source address towards the server.
	src tcpip.Address
	// snMAC are the Ethernet multicast addresses of the solicited-node
	// groups of our two addresses, which we must receive.
	snMAC [2][6]byte
	// dstMAC is where an NS goes: the target's solicited-node group.
	dstMAC [6]byte
	nd     [ndLen]byte
	ip6    header.IPv6Fields
}

// linkLocal is fe80::/64 with the modified EUI-64 of mac.
func linkLocal(mac [6]byte) tcpip.Address {
	var a [16]byte
	a[0], a[1] = 0xfe, 0x80
	header.EthernetAdddressToModifiedEUI64IntoBuf(tcpip.LinkAddress(unsafe.String(&mac[0], 6)), a[8:])
	return tcpip.AddrFrom16(a)
}

// solicitedNode is the solicited-node multicast group of a (ff02::1:ffXX:XXXX).
func solicitedNode(a tcpip.Address) tcpip.Address {
	b := a.As16()
	g := [16]byte{0xff, 0x02, 11: 0x01, 12: 0xff, 13: b[13], 14: b[14], 15: b[15]}
	return tcpip.AddrFrom16(g)
}

// multicastMAC is the Ethernet address of an IPv6 multicast group
// (33:33 and the group's last four bytes).
func multicastMAC(group tcpip.Address) [6]byte {
	b := group.As16()
	return [6]byte{0x33, 0x33, b[12], b[13], b[14], b[15]}
}

// setAddrs6 fills in the IPv6 state for client, server and gateway (all
// IPv6, checked by the caller).
func (c *Conn) setAddrs6(client, server, gateway netip.Addr) error {
	c.v6.on = true
	c.v6.ll = linkLocal(c.mac)
	c.client = tcpip.AddrFrom16(client.As16())
	c.server = tcpip.AddrFrom16(server.As16())
	c.gateway = tcpip.Address{}
	if gateway.IsValid() {
		c.gateway = tcpip.AddrFrom16(gateway.As16())
	}
	switch {
	case server.IsLinkLocalUnicast():
		c.v6.src = c.v6.ll
		if client.IsLinkLocalUnicast() {
			c.v6.src = c.client
		}
	case client.IsLinkLocalUnicast():
		return ErrScope
	default:
		c.v6.src = c.client
	}
	c.v6.snMAC[0] = multicastMAC(solicitedNode(c.client))
	c.v6.snMAC[1] = multicastMAC(solicitedNode(c.v6.ll))
	c.maxPayload = c.nic.MTU() - ip6Len - udpLen
	c.hdr = hdr6Len
	return nil
}

// ours reports whether a is one of our IPv6 addresses.
func (c *Conn) ours(a tcpip.Address) bool { return a == c.client || a == c.v6.ll }

// ndSource is the source of ND messages about target: the link-local
// address for a link-local target, else the one we send data from.
func (c *Conn) ndSource(target tcpip.Address) tcpip.Address {
	if b := target.As16(); b[0] == 0xfe && b[1]&0xc0 == 0x80 {
		return c.v6.ll
	}
	return c.v6.src
}

// sendNS solicits target's link-layer address.
func (c *Conn) sendNS(target tcpip.Address) {
	group := solicitedNode(target)
	c.v6.dstMAC = multicastMAC(group)
	c.sendND(header.ICMPv6NeighborSolicit, tcpip.LinkAddress(unsafe.String(&c.v6.dstMAC[0], 6)),
		c.ndSource(target), group, target, false)
}

// sendND builds and sends an NS or NA about target with our MAC as its
// link-layer address option.
func (c *Conn) sendND(typ header.ICMPv6Type, dstMAC tcpip.LinkAddress, src, dst, target tcpip.Address, solicited bool) {
	f := c.v6.nd[:]
	clear(f)
	c.eth = header.EthernetFields{SrcAddr: c.macStr, DstAddr: dstMAC, Type: header.IPv6ProtocolNumber}
	header.Ethernet(f).Encode(&c.eth)
	c.v6.ip6 = header.IPv6Fields{PayloadLength: ndICMPLen, TransportProtocol: header.ICMPv6ProtocolNumber,
		HopLimit: ndHopLimit, SrcAddr: src, DstAddr: dst}
	header.IPv6(f[ethLen:]).Encode(&c.v6.ip6)
	icmp := header.ICMPv6(f[ethLen+ip6Len:])
	icmp.SetType(typ)
	body := icmp.MessageBody()
	opt := body[header.NDPNSMinimumSize:]
	if typ == header.ICMPv6NeighborSolicit {
		header.NDPNeighborSolicit(body).SetTargetAddress(target)
		opt[0] = optSourceLL
	} else {
		na := header.NDPNeighborAdvert(body)
		na.SetTargetAddress(target)
		na.SetSolicitedFlag(solicited)
		na.SetOverrideFlag(true)
		opt[0] = optTargetLL
	}
	opt[1] = 1 // in units of 8 bytes
	copy(opt[2:8], c.mac[:])
	icmp.SetChecksum(header.ICMPv6Checksum(header.ICMPv6ChecksumParams{Header: icmp, Src: src, Dst: dst}))
	c.nic.Transmit(f) //nolint:errcheck // a lost ND frame is retried like a lost reply
}

// wanted6 reports whether an Ethernet destination is one we receive on
// IPv6: our solicited-node groups.
func (c *Conn) wanted6(dst []byte) bool {
	if !c.v6.on {
		return false
	}
	for i := range c.v6.snMAC {
		if string(dst) == unsafe.String(&c.v6.snMAC[i][0], 6) {
			return true
		}
	}
	return false
}

func (c *Conn) inputIPv6(srcMAC []byte, b []byte) {
	if !c.v6.on {
		return
	}
	ip := header.IPv6(b)
	if !ip.IsValid(len(b)) {
		return
	}
	b = b[ip6Len : ip6Len+int(ip.PayloadLength())]
	src, dst := ip.SourceAddress(), ip.DestinationAddress()
	switch ip.TransportProtocol() {
	case header.ICMPv6ProtocolNumber:
		if ip.HopLimit() == ndHopLimit {
			c.inputND(srcMAC, src, dst, b)
		}
	case header.UDPProtocolNumber:
		// Extension headers are not followed: netdump servers send none.
		if src == c.server && c.ours(dst) {
			c.inputUDP(src, dst, b, true)
		}
	}
}

// inputND answers solicitations for our addresses and takes the answer to
// ours.
func (c *Conn) inputND(srcMAC []byte, src, dst tcpip.Address, b []byte) {
	if len(b) < header.ICMPv6NeighborSolicitMinimumSize {
		return
	}
	icmp := header.ICMPv6(b)
	if icmp.Code() != 0 || header.ICMPv6Checksum(header.ICMPv6ChecksumParams{
		Header: icmp[:header.ICMPv6HeaderSize+header.NDPNSMinimumSize], Src: src, Dst: dst,
		PayloadCsum: onesSum(icmp[header.ICMPv6HeaderSize+header.NDPNSMinimumSize:], 0),
		PayloadLen:  len(icmp) - header.ICMPv6HeaderSize - header.NDPNSMinimumSize,
	}) != icmp.Checksum() {
		return
	}
	body := icmp.MessageBody()
	opts := body[header.NDPNSMinimumSize:]
	switch icmp.Type() {
	case header.ICMPv6NeighborSolicit:
		target := header.NDPNeighborSolicit(body).TargetAddress()
		if !c.ours(target) || src.As16() == [16]byte{} {
			return // not for us, or duplicate address detection
		}
		mac, found, valid := linkOption(opts, optSourceLL)
		if !valid {
			return
		}
		if !found {
			copy(mac[:], srcMAC)
		}
		if mac == c.mac {
			return
		}
		c.asker = mac
		c.sendND(header.ICMPv6NeighborAdvert, tcpip.LinkAddress(unsafe.String(&c.asker[0], 6)), target, src, target, true)
	case header.ICMPv6NeighborAdvert:
		target := header.NDPNeighborAdvert(body).TargetAddress()
		if c.arpTarget.Len() == 0 || target != c.arpTarget {
			return
		}
		mac, found, valid := linkOption(opts, optTargetLL)
		if !valid {
			return
		}
		if !found {
			copy(mac[:], srcMAC)
		}
		c.peerMAC = mac
		c.arpFound = true
	}
}

// linkOption finds an Ethernet link-layer address option of type typ in
// the options of an ND message; valid is false if they are malformed (a
// zero-length or overlong option), which makes the message one to drop.
func linkOption(opts []byte, typ byte) (mac [6]byte, found, valid bool) {
	for len(opts) > 0 {
		if len(opts) < 2 {
			return mac, false, false
		}
		n := int(opts[1]) * 8
		if n == 0 || n > len(opts) {
			return mac, false, false
		}
		if opts[0] == typ && n == ndOptLen {
			copy(mac[:], opts[2:8])
			found = true
		}
		opts = opts[n:]
	}
	return mac, found, true
}
