// Package debugnet is a minimal UDP endpoint over a polled NIC, after
// FreeBSD's debugnet (netdump-protocol.md §2): it resolves the server's
// (or the gateway's) MAC, answers for its own address, sends UDP without
// fragmentation, and hands the UDP payloads the server sends to its port
// to a handler, dropping everything else. It speaks IPv4 with ARP, as
// FreeBSD's does, and IPv6 with neighbour discovery (ipv6.go), chosen by
// the addresses it is given. Headers
// are gVisor's header views over one frame buffer reserved by New, so
// nothing allocates after that: it runs after a panic.
package debugnet

import (
	"errors"
	"fmt"
	"io"
	"net/netip"
	"time"
	"unsafe"

	"github.com/tamadump/tamadump/phases"
	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/header"
)

// Defaults, as FreeBSD's net.debugnet knobs.
const (
	DefaultPolls      = 2000
	DefaultPollDelay  = 500 * time.Microsecond
	DefaultRetries    = 10
	DefaultARPRetries = 3
)

// Header sizes of a UDP datagram on Ethernet.
const (
	ethLen  = header.EthernetMinimumSize
	ipLen   = header.IPv4MinimumSize
	udpLen  = header.UDPMinimumSize
	hdrLen  = ethLen + ipLen + udpLen
	minLen  = 60 // shortest Ethernet frame without FCS
	arpLen  = ethLen + header.ARPSize
	ttl     = 255
	maxIPv4 = 0xffff
)

// Config is what debugnet needs to reach one server.
type Config struct {
	Client, Server netip.Addr
	// Gateway is the next hop when the server does not answer ARP;
	// the zero Addr means none.
	Gateway netip.Addr
	// ClientPort is our UDP port; datagrams from Server to it reach the
	// handler.
	ClientPort uint16
	// Polls × PollDelay is one wait for an answer (≈1 s by default),
	// measured with Clock rather than counted, so it lasts as long on a
	// fast machine as on a slow one.
	Polls     int
	PollDelay time.Duration
	// ARPRetries is the number of ARP requests per target.
	ARPRetries int
	// Clock is a monotonic time in nanoseconds; nil uses the runtime's.
	Clock func() int64
	// Idle runs when a poll found nothing; nil spins. Tests yield here.
	Idle func()
	// Console receives progress and complaints; nil discards them.
	Console io.Writer
}

// Errors.
var (
	ErrNoARP       = errors.New("debugnet: no ARP reply from the server or the gateway")
	ErrTooBig      = errors.New("debugnet: datagram larger than the MTU allows")
	ErrNotResolved = errors.New("debugnet: next hop not resolved (call Connect)")
	ErrFamily      = errors.New("debugnet: client, server and gateway must be all IPv4 or all IPv6")
	ErrScope       = errors.New("debugnet: a link-local client address cannot reach a server beyond the link")
	ErrMTU         = errors.New("debugnet: NIC MTU too small for IPv6")
)

// Conn is the endpoint. It is not safe for concurrent use.
type Conn struct {
	nic     NIC
	cfg     Config
	mac     [6]byte
	peerMAC [6]byte
	asker   [6]byte // who sent the ARP request being answered
	// macStr and peerStr view mac and peerMAC as the strings gVisor's
	// Ethernet fields take, without allocating a copy per frame.
	macStr, peerStr tcpip.LinkAddress
	resolved        bool
	client, server  tcpip.Address
	gateway         tcpip.Address
	arpTarget       tcpip.Address // the address being resolved
	arpFound        bool
	maxPayload      int
	frame           []byte // the datagram being built
	arp             [minLen]byte
	eth             header.EthernetFields
	ip              header.IPv4Fields
	udp             header.UDPFields
	hdr             int // Ethernet, IP and UDP headers of a datagram
	v6              v6
	handler         func(srcPort uint16, payload []byte)
	onFrame         func([]byte)
	line            *Line
	claimed         bool // another host's ARP claimed our address; said once
	start           time.Time
	ph              *phases.Counters
	q               Queuer   // the NIC, when it batches doorbells
	g               Gatherer // the NIC, when it sends in place
	fr              Framer   // the NIC, when it lends buffers and does not gather
}

// New prepares an endpoint on nic. handler receives each valid UDP
// payload the server sends to ClientPort (with the server's source port);
// it must not keep the slice. New allocates; nothing after it does.
func New(nic NIC, cfg Config, handler func(srcPort uint16, payload []byte)) (*Conn, error) {
	if cfg.ClientPort == 0 {
		return nil, errors.New("debugnet: client port 0")
	}
	if cfg.Polls <= 0 {
		cfg.Polls = DefaultPolls
	}
	if cfg.PollDelay <= 0 {
		cfg.PollDelay = DefaultPollDelay
	}
	if cfg.ARPRetries <= 0 {
		cfg.ARPRetries = DefaultARPRetries
	}
	mtu := nic.MTU()
	if mtu < ipLen+udpLen+1 || mtu > maxIPv4 {
		return nil, fmt.Errorf("debugnet: NIC MTU %d out of range", mtu)
	}
	c := &Conn{
		nic:     nic,
		cfg:     cfg,
		mac:     nic.MAC(),
		frame:   make([]byte, ethLen+mtu),
		handler: handler,
		line:    NewLine(cfg.Console),
		start:   time.Now(),
	}
	if err := c.SetAddrs(cfg.Client, cfg.Server, cfg.Gateway); err != nil {
		return nil, fmt.Errorf("%w: client %v, server %v, gateway %v", err, cfg.Client, cfg.Server, cfg.Gateway)
	}
	c.macStr = tcpip.LinkAddress(unsafe.String(&c.mac[0], 6))
	c.peerStr = tcpip.LinkAddress(unsafe.String(&c.peerMAC[0], 6))
	c.onFrame = c.input
	c.q, _ = nic.(Queuer)
	if g, ok := nic.(Gatherer); ok && g.Gathers() {
		c.g = g
	} else if fr, ok := nic.(Framer); ok {
		c.fr = fr
	}
	if c.cfg.Clock == nil {
		c.cfg.Clock = c.sinceStart
	}
	return c, nil
}

// SetAddrs points the endpoint at other addresses (DDB's netdump command
// does this after a panic), without allocating; the next hop must be
// resolved again with Connect. The family of the addresses, all IPv4 or all
// IPv6, decides the endpoint's, and with it MaxPayload.
func (c *Conn) SetAddrs(client, server, gateway netip.Addr) error {
	client, server, gateway = client.Unmap(), server.Unmap(), gateway.Unmap()
	if !client.IsValid() || !server.IsValid() || client.Is4() != server.Is4() || gateway.IsValid() && gateway.Is4() != client.Is4() {
		return ErrFamily
	}
	if client.Is6() {
		if c.nic.MTU() < ip6Len+udpLen+1 {
			return ErrMTU
		}
		if err := c.setAddrs6(client, server, gateway); err != nil {
			return err
		}
		c.cfg.Client, c.cfg.Server, c.cfg.Gateway = client, server, gateway
		c.resolved = false
		return nil
	}
	c.v6.on = false
	c.maxPayload = c.nic.MTU() - ipLen - udpLen
	c.hdr = hdrLen
	c.cfg.Client, c.cfg.Server, c.cfg.Gateway = client, server, gateway
	c.client = tcpip.AddrFrom4(client.As4())
	c.server = tcpip.AddrFrom4(server.As4())
	c.gateway = tcpip.Address{}
	if gateway.IsValid() {
		c.gateway = tcpip.AddrFrom4(gateway.As4())
	}
	c.resolved = false
	return nil
}

func (c *Conn) sinceStart() int64 { return int64(time.Since(c.start)) }

// Now is the endpoint's clock in nanoseconds.
func (c *Conn) Now() int64 { return c.cfg.Clock() }

// Timeout is one wait for an answer: Polls × PollDelay.
func (c *Conn) Timeout() time.Duration { return time.Duration(c.cfg.Polls) * c.cfg.PollDelay }

// MaxPayload is the largest UDP payload that fits the MTU: 20 bytes less
// on IPv6, whose header is 40 bytes.
func (c *Conn) MaxPayload() int { return c.maxPayload }

// IPv6 reports whether the endpoint speaks IPv6.
func (c *Conn) IPv6() bool { return c.v6.on }

// MAC is our address; PeerMAC the resolved next hop.
func (c *Conn) MAC() [6]byte     { return c.mac }
func (c *Conn) PeerMAC() [6]byte { return c.peerMAC }

// Line is the endpoint's console line builder, for its users' messages.
func (c *Conn) Line() *Line { return c.line }

// Payload is where the next datagram's payload is written before Send.
func (c *Conn) Payload() []byte { return c.frame[c.hdr : c.hdr+c.maxPayload] }

// Connect resolves the next hop: the server first, then the gateway if one
// is configured, ARPRetries requests (ARP, or neighbour solicitations on
// IPv6) each, one Timeout per request.
func (c *Conn) Connect() error {
	c.resolved = false
	if c.gateway.Len() != 0 {
		c.line.S("debugnet: searching for gateway MAC...\r\n").Flush()
	} else {
		c.line.S("debugnet: searching for server MAC...\r\n").Flush()
	}
	if c.resolve(c.server) {
		return nil
	}
	if c.gateway.Len() != 0 {
		if c.v6.on {
			c.line.S("debugnet: no neighbour advertisement from the server, trying to reach gateway...\r\n").Flush()
		} else {
			c.line.S("debugnet: failed to ARP server, trying to reach gateway...\r\n").Flush()
		}
		if c.resolve(c.gateway) {
			return nil
		}
	}
	return ErrNoARP
}

func (c *Conn) resolve(target tcpip.Address) bool {
	c.arpTarget, c.arpFound = target, false
	defer func() { c.arpTarget = tcpip.Address{} }()
	for try := 0; try < c.cfg.ARPRetries; try++ {
		if c.v6.on {
			c.sendNS(target)
		} else {
			c.sendARP(header.ARPRequest, header.EthernetBroadcastAddress, [6]byte{}, target)
		}
		deadline := c.Now() + int64(c.Timeout())
		for c.Now() < deadline {
			if c.PollOnce() == 0 && c.cfg.Idle != nil {
				c.cfg.Idle()
			}
			if c.arpFound {
				c.resolved = true
				return true
			}
		}
		if c.v6.on {
			c.line.S("(NS retry)\r\n").Flush()
		} else {
			c.line.S("(ARP retry)\r\n").Flush()
		}
	}
	return false
}

func (c *Conn) sendARP(op header.ARPOp, dst tcpip.LinkAddress, targetMAC [6]byte, targetIP tcpip.Address) {
	f := c.arp[:]
	clear(f)
	c.eth = header.EthernetFields{SrcAddr: c.macStr, DstAddr: dst, Type: header.ARPProtocolNumber}
	header.Ethernet(f).Encode(&c.eth)
	a := header.ARP(f[ethLen:])
	a.SetIPv4OverEthernet()
	a.SetOp(op)
	copy(a.HardwareAddressSender(), c.mac[:])
	copy(a.ProtocolAddressSender(), c.client.AsSlice())
	copy(a.HardwareAddressTarget(), targetMAC[:])
	copy(a.ProtocolAddressTarget(), targetIP.AsSlice())
	c.nic.Transmit(f) //nolint:errcheck // a lost ARP frame is retried like a lost reply
}

// Send transmits the n payload bytes written to Payload as one datagram
// from ClientPort to the server's dstPort.
func (c *Conn) Send(dstPort uint16, n int) error { return c.send(dstPort, n, nil, 0, false) }

// send transmits the n bytes of Payload followed by tail as one datagram:
// tail read by the NIC in place at bus address addr if inPlace (see
// SendFrom), else copied (see SendCopy).
func (c *Conn) send(dstPort uint16, n int, tail []byte, addr uint64, inPlace bool) error {
	if !c.resolved {
		return ErrNotResolved
	}
	if n < 0 || n+len(tail) > c.maxPayload {
		return ErrTooBig
	}
	f := c.frame
	if c.fr != nil {
		prev := c.ph.Enter(phases.Driver)
		b, err := c.fr.Frame()
		c.ph.Enter(prev)
		if err != nil {
			return err
		}
		f = b
		if tail == nil {
			// The whole payload was written to Payload: it goes into
			// the lent buffer as a tail would, copied as it is summed.
			tail, n = c.frame[c.hdr:c.hdr+n], 0
		} else {
			copy(f[c.hdr:c.hdr+n], c.frame[c.hdr:c.hdr+n]) // the head
		}
	}
	if inPlace && c.hdr+n+len(tail) < minLen {
		// Too short for the NIC to pad after the tail: copied.
		inPlace = false
	}
	total := n + len(tail)
	c.eth = header.EthernetFields{SrcAddr: c.macStr, DstAddr: c.peerStr, Type: header.IPv4ProtocolNumber}
	src := c.client
	if c.v6.on {
		c.eth.Type, src = header.IPv6ProtocolNumber, c.v6.src
	}
	header.Ethernet(f).Encode(&c.eth)
	if c.v6.on {
		c.v6.ip6 = header.IPv6Fields{PayloadLength: uint16(udpLen + total), TransportProtocol: header.UDPProtocolNumber,
			HopLimit: ttl, SrcAddr: src, DstAddr: c.server}
		header.IPv6(f[ethLen:]).Encode(&c.v6.ip6)
	} else {
		c.ip = header.IPv4Fields{
			TotalLength: uint16(ipLen + udpLen + total),
			Flags:       header.IPv4FlagDontFragment,
			TTL:         ttl,
			Protocol:    uint8(header.UDPProtocolNumber),
			SrcAddr:     src,
			DstAddr:     c.server,
		}
		ip := header.IPv4(f[ethLen:])
		ip.Encode(&c.ip)
		ip.SetChecksum(^ip.CalculateChecksum())
	}
	// The UDP header and checksum are the same on both families (IPv6
	// makes the checksum mandatory; IPv4 gets one too).
	c.udp = header.UDPFields{SrcPort: c.cfg.ClientPort, DstPort: dstPort, Length: uint16(udpLen + total)}
	u := header.UDP(f[c.hdr-udpLen:])
	u.Encode(&c.udp)
	prev := c.ph.Enter(phases.Checksum)
	sum := header.PseudoHeaderChecksum(header.UDPProtocolNumber, src, c.server, uint16(udpLen+total))
	if c.g != nil {
		// The NIC adds the UDP header and payload to the pseudo-header's
		// sum (and never leaves 0, which means "no checksum").
		u.SetChecksum(sum)
		if !inPlace {
			c.ph.Enter(phases.Copy)
			copy(f[c.hdr+n:], tail)
		}
	} else {
		// The tail is copied as it is summed (charged to the copy).
		c.ph.Enter(phases.Copy)
		if n%2 == 0 {
			sum = copySum(f[c.hdr+n:], tail, onesSum(f[c.hdr:c.hdr+n], sum))
			c.ph.Enter(phases.Checksum)
		} else { // a tail at an odd offset, which the fused sum would take swapped
			copy(f[c.hdr+n:], tail)
			c.ph.Enter(phases.Checksum)
			sum = onesSum(f[c.hdr:c.hdr+total], sum)
		}
		sum = ^u.CalculateChecksum(sum)
		if sum == 0 {
			sum = 0xffff // 0 means "no checksum" in UDP
		}
		u.SetChecksum(sum)
	}
	end, gather := c.hdr+total, 0
	if inPlace {
		end, gather = c.hdr+n, len(tail)
	}
	if end < minLen {
		clear(f[end:minLen])
		end = minLen
	}
	c.ph.Enter(phases.Driver)
	var err error
	switch {
	case c.g != nil:
		err = c.g.QueueGather(f[:end], addr, gather, Offload{Start: uint16(c.hdr - udpLen), Offset: 6})
	case c.fr != nil:
		err = c.fr.QueueFrame(end)
	default:
		err = c.transmit(f[:end])
	}
	c.ph.Enter(prev)
	return err
}

// PollOnce processes the frames the NIC has received and returns how many.
func (c *Conn) PollOnce() int {
	c.Flush()
	return c.nic.Poll(c.onFrame)
}

func (c *Conn) input(f []byte) {
	if len(f) < ethLen {
		return
	}
	eth := header.Ethernet(f)
	dst := eth.DestinationAddress()
	if dst != c.macStr && dst != header.EthernetBroadcastAddress && !c.wanted6(f[:6]) {
		return
	}
	switch eth.Type() {
	case header.ARPProtocolNumber:
		if !c.v6.on {
			c.inputARP(f[ethLen:])
		}
	case header.IPv4ProtocolNumber:
		if !c.v6.on {
			c.inputIPv4(f[ethLen:])
		}
	case header.IPv6ProtocolNumber:
		c.inputIPv6(f[6:12], f[ethLen:])
	}
}

func (c *Conn) inputARP(b []byte) {
	a := header.ARP(b)
	if !a.IsValid() {
		return
	}
	var senderMAC [6]byte
	copy(senderMAC[:], a.HardwareAddressSender())
	if senderMAC == c.mac || senderMAC == [6]byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff} {
		return
	}
	sender := tcpip.AddrFrom4Slice(a.ProtocolAddressSender())
	if sender == c.client {
		if !c.claimed {
			c.claimed = true
			c.line.S("debugnet: host ").MAC(senderMAC).S(" claims our address ").IP(c.cfg.Client).S("\r\n").Flush()
		}
		return
	}
	switch a.Op() {
	case header.ARPRequest:
		if tcpip.AddrFrom4Slice(a.ProtocolAddressTarget()) == c.client {
			// The asker's MAC lives in the Conn so that viewing it as a
			// string does not move it to the heap.
			c.asker = senderMAC
			c.sendARP(header.ARPReply, tcpip.LinkAddress(unsafe.String(&c.asker[0], 6)), senderMAC, sender)
		}
	case header.ARPReply:
		if c.arpTarget.Len() != 0 && sender == c.arpTarget {
			c.peerMAC = senderMAC
			c.arpFound = true
		}
	}
}

func (c *Conn) inputIPv4(b []byte) {
	ip := header.IPv4(b)
	if !ip.IsValid(len(b)) || ip.HeaderLength() != ipLen || !ip.IsChecksumValid() {
		return
	}
	if ip.More() || ip.FragmentOffset() != 0 || ip.TransportProtocol() != header.UDPProtocolNumber {
		return
	}
	if ip.SourceAddress() != c.server || ip.DestinationAddress() != c.client {
		return
	}
	c.inputUDP(c.server, c.client, b[ipLen:ip.TotalLength()], false)
}

// inputUDP hands the payload of a datagram from src to dst (the server and
// us, already checked) to the handler if it is for our port and its
// checksum holds. IPv4 allows a datagram without one (zero); IPv6 does not.
func (c *Conn) inputUDP(src, dst tcpip.Address, b []byte, needSum bool) {
	if len(b) < udpLen {
		return
	}
	u := header.UDP(b)
	if int(u.Length()) != len(b) || u.DestinationPort() != c.cfg.ClientPort {
		return
	}
	payload := b[udpLen:]
	if u.Checksum() == 0 && needSum || u.Checksum() != 0 && !u.IsChecksumValid(src, dst, onesSum(payload, 0)) {
		return
	}
	if c.handler != nil {
		c.handler(u.SourcePort(), payload)
	}
}
