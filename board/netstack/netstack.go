// Package netstack is an IPv4 host built on gVisor's network stack: one
// Ethernet NIC with one address, answering ARP and ping, carrying UDP;
// optionally with an IPv6 address too (and its link-local one, answering
// neighbour discovery). Its
// frames are exchanged with a driver in process (Inject and Attach). The
// image runs it on its NIC in normal operation (never after a crash:
// gVisor allocates); the host's test network (qemu/usernet) is one too.
package netstack

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"gvisor.dev/gvisor/pkg/buffer"
	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/adapters/gonet"
	"gvisor.dev/gvisor/pkg/tcpip/header"
	"gvisor.dev/gvisor/pkg/tcpip/link/channel"
	"gvisor.dev/gvisor/pkg/tcpip/link/ethernet"
	"gvisor.dev/gvisor/pkg/tcpip/network/arp"
	"gvisor.dev/gvisor/pkg/tcpip/network/ipv4"
	"gvisor.dev/gvisor/pkg/tcpip/network/ipv6"
	"gvisor.dev/gvisor/pkg/tcpip/stack"
	"gvisor.dev/gvisor/pkg/tcpip/transport/icmp"
	"gvisor.dev/gvisor/pkg/tcpip/transport/udp"
	"gvisor.dev/gvisor/pkg/waiter"
)

const (
	nicID = 1
	// txQueue is how many transmitted frames may wait for the output:
	// far more than the 64 datagrams a netdump client keeps in flight.
	txQueue = 1024
	// DefaultMTU is the IP MTU when Config.MTU is 0.
	DefaultMTU = 1500
)

// Config describes the host.
type Config struct {
	// Addr is the host's address and subnet; the subnet is reachable
	// directly (ARP).
	Addr netip.Prefix
	// MAC is the NIC's address; nil picks a locally administered one
	// derived from Addr.
	MAC net.HardwareAddr
	// MTU is the IP MTU (frames are 14 bytes longer); 0 means 1500.
	MTU uint32
	// Gateway, if set, is the next hop for addresses outside Addr's
	// subnet.
	Gateway netip.Addr
	// Addr6, if set, is the host's IPv6 address and subnet, beside its
	// link-local one (fe80:: and the MAC's modified EUI-64).
	Addr6 netip.Prefix
}

// Stack is the user-space host.
type Stack struct {
	st    *stack.Stack
	ep    *channel.Endpoint
	addr  netip.Addr
	addr6 netip.Addr // invalid: no IPv6
	ll6   netip.Addr
	mac   net.HardwareAddr
	mtu   uint32

	out     atomic.Pointer[output]
	dropped atomic.Uint64
	cancel  context.CancelFunc
	pumped  sync.WaitGroup
}

// New starts a stack.
func New(cfg Config) (*Stack, error) {
	if !cfg.Addr.IsValid() || !cfg.Addr.Addr().Is4() {
		return nil, fmt.Errorf("netstack: %v is not an IPv4 prefix", cfg.Addr)
	}
	if cfg.MTU == 0 {
		cfg.MTU = DefaultMTU
	}
	mac := cfg.MAC
	if mac == nil {
		a := cfg.Addr.Addr().As4()
		mac = net.HardwareAddr{0x02, 0x00, a[0], a[1], a[2], a[3]}
	}
	if len(mac) != 6 {
		return nil, fmt.Errorf("netstack: bad MAC %v", mac)
	}
	protocols := []stack.NetworkProtocolFactory{
		// Loopback-range addresses are accepted on the NIC so that
		// tests can stay inside 127.0.0.0/8.
		ipv4.NewProtocolWithOptions(ipv4.Options{AllowExternalLoopbackTraffic: true}),
		arp.NewProtocol,
	}
	if cfg.Addr6.IsValid() {
		if !cfg.Addr6.Addr().Is6() {
			return nil, fmt.Errorf("netstack: %v is not an IPv6 prefix", cfg.Addr6)
		}
		// Addresses are usable at once: a zero DADConfigs does no
		// duplicate address detection.
		protocols = append(protocols, ipv6.NewProtocolWithOptions(ipv6.Options{AutoGenLinkLocal: true, AllowExternalLoopbackTraffic: true}))
	}
	st := stack.New(stack.Options{
		NetworkProtocols:   protocols,
		TransportProtocols: []stack.TransportProtocolFactory{udp.NewProtocol, icmp.NewProtocol4},
	})
	ep := channel.New(txQueue, cfg.MTU+header.EthernetMinimumSize, tcpip.LinkAddress(mac))
	if err := st.CreateNIC(nicID, ethernet.New(ep)); err != nil {
		st.Close()
		return nil, fmt.Errorf("netstack: CreateNIC: %s", err)
	}
	addr := cfg.Addr.Addr()
	pa := tcpip.ProtocolAddress{
		Protocol: ipv4.ProtocolNumber,
		AddressWithPrefix: tcpip.AddressWithPrefix{
			Address:   tcpip.AddrFrom4(addr.As4()),
			PrefixLen: cfg.Addr.Bits(),
		},
	}
	if err := st.AddProtocolAddress(nicID, pa, stack.AddressProperties{}); err != nil {
		st.Close()
		return nil, fmt.Errorf("netstack: AddProtocolAddress: %s", err)
	}
	routes := []tcpip.Route{{Destination: pa.AddressWithPrefix.Subnet(), NIC: nicID}}
	var addr6 netip.Addr
	if cfg.Addr6.IsValid() {
		addr6 = cfg.Addr6.Addr()
		pa6 := tcpip.ProtocolAddress{Protocol: ipv6.ProtocolNumber, AddressWithPrefix: tcpip.AddressWithPrefix{
			Address: tcpip.AddrFrom16(addr6.As16()), PrefixLen: cfg.Addr6.Bits()}}
		if err := st.AddProtocolAddress(nicID, pa6, stack.AddressProperties{}); err != nil {
			st.Close()
			return nil, fmt.Errorf("netstack: AddProtocolAddress: %s", err)
		}
		routes = append(routes, tcpip.Route{Destination: pa6.AddressWithPrefix.Subnet(), NIC: nicID},
			tcpip.Route{Destination: header.IPv6LinkLocalPrefix.Subnet(), NIC: nicID})
	}
	if cfg.Gateway.Is4() {
		routes = append(routes, tcpip.Route{Destination: header.IPv4EmptySubnet, Gateway: tcpip.AddrFrom4(cfg.Gateway.As4()), NIC: nicID})
	}
	st.SetRouteTable(routes)
	ctx, cancel := context.WithCancel(context.Background())
	s := &Stack{st: st, ep: ep, addr: addr, addr6: addr6, mac: mac, mtu: cfg.MTU, cancel: cancel}
	if addr6.IsValid() {
		s.ll6 = netip.AddrFrom16(header.LinkLocalAddr(tcpip.LinkAddress(mac)).As16())
	}
	s.pumped.Add(1)
	go s.pump(ctx)
	return s, nil
}

// Addr is the host's address.
func (s *Stack) Addr() netip.Addr { return s.addr }

// Addr6 is the host's IPv6 address and LinkLocal6 its link-local one
// (both invalid without IPv6).
func (s *Stack) Addr6() netip.Addr      { return s.addr6 }
func (s *Stack) LinkLocal6() netip.Addr { return s.ll6 }

// Local reports whether a is one of the host's addresses.
func (s *Stack) Local(a netip.Addr) bool {
	a = a.Unmap().WithZone("")
	return a.IsValid() && (a == s.addr || a == s.addr6 || a == s.ll6)
}

// MAC is the NIC's address.
func (s *Stack) MAC() net.HardwareAddr { return s.mac }

// MTU is the IP MTU.
func (s *Stack) MTU() uint32 { return s.mtu }

// Stack is the gVisor stack, for other gonet users.
func (s *Stack) Stack() *stack.Stack { return s.st }

// BadChecksums counts received UDP datagrams dropped for a wrong
// checksum.
func (s *Stack) BadChecksums() uint64 { return s.st.Stats().UDP.ChecksumErrors.Value() }

// Dropped counts transmitted frames discarded because no output was
// attached.
func (s *Stack) Dropped() uint64 { return s.dropped.Load() }

// Inject delivers one received Ethernet frame (no FCS) to the stack; the
// frame is copied. Frames for other MACs are ignored as a NIC would.
func (s *Stack) Inject(frame []byte) {
	if len(frame) < header.EthernetMinimumSize {
		return
	}
	pkt := stack.NewPacketBuffer(stack.PacketBufferOptions{Payload: buffer.MakeWithData(frame)})
	s.ep.InjectInbound(0, pkt)
	pkt.DecRef()
}

// Attach sends every frame the stack transmits to out, from one goroutine,
// in order. The frame is only valid during the call. It replaces any
// previous output; until one is attached frames are dropped.
func (s *Stack) Attach(out func(frame []byte)) { s.out.Store(&output{frame: out}) }

// output takes the transmitted frames: frame for each, then flush (if
// set) once no more are waiting, so that a batch costs one write.
type output struct {
	frame func([]byte)
	flush func()
}

// AttachBatched is Attach with a flush called once no more frames are
// waiting, so a burst can leave in one write.
func (s *Stack) AttachBatched(frame func([]byte), flush func()) {
	s.out.Store(&output{frame: frame, flush: flush})
}

func (s *Stack) pump(ctx context.Context) {
	defer s.pumped.Done()
	frame := make([]byte, 0, s.mtu+header.EthernetMinimumSize)
	for {
		pkt := s.ep.ReadContext(ctx)
		if pkt == nil {
			return
		}
		out := s.out.Load()
		for pkt != nil {
			frame = frame[:0]
			for _, v := range pkt.AsSlices() {
				frame = append(frame, v...)
			}
			pkt.DecRef()
			if out != nil {
				out.frame(frame)
			} else {
				s.dropped.Add(1)
			}
			pkt = s.ep.Read()
		}
		if out != nil && out.flush != nil {
			out.flush()
		}
	}
}

// Close stops the stack; attached connections are left to their owners.
func (s *Stack) Close() {
	s.cancel()
	s.pumped.Wait()
	s.st.Close()
	s.st.Wait()
	s.ep.Close()
}

// ListenUDP opens a UDP socket on the host's address (port 0: any free
// port).
func (s *Stack) ListenUDP(port uint16) (*gonet.UDPConn, error) {
	c, _, err := s.Dial(udp.ProtocolNumber, port, netip.AddrPort{})
	return c, err
}

// ListenUDPOn is ListenUDP on local, one of the host's addresses.
func (s *Stack) ListenUDPOn(local netip.Addr, port uint16) (*gonet.UDPConn, error) {
	c, _, err := s.DialFrom(udp.ProtocolNumber, local, port, netip.AddrPort{})
	return c, err
}

// DialUDP opens a UDP socket on the host's address connected to remote.
func (s *Stack) DialUDP(port uint16, remote netip.AddrPort) (*gonet.UDPConn, error) {
	c, _, err := s.Dial(udp.ProtocolNumber, port, remote)
	return c, err
}

// Dial opens a datagram endpoint (UDP, or ICMP echo) on the host's
// address, as gonet.DialUDP but also returning the endpoint, whose options
// gonet hides.
func (s *Stack) Dial(proto tcpip.TransportProtocolNumber, port uint16, remote netip.AddrPort) (*gonet.UDPConn, tcpip.Endpoint, error) {
	return s.DialFrom(proto, s.addr, port, remote)
}

// DialFrom is Dial on local, one of the host's addresses (IPv4, IPv6 or
// link-local).
func (s *Stack) DialFrom(proto tcpip.TransportProtocolNumber, local netip.Addr, port uint16, remote netip.AddrPort) (*gonet.UDPConn, tcpip.Endpoint, error) {
	if !s.Local(local) {
		return nil, nil, fmt.Errorf("netstack: %v is not this host's address", local)
	}
	netProto := ipv4.ProtocolNumber
	if local.Unmap().Is6() {
		netProto = ipv6.ProtocolNumber
	}
	var wq waiter.Queue
	ep, terr := s.st.NewEndpoint(proto, netProto, &wq)
	if terr != nil {
		return nil, nil, fmt.Errorf("netstack: %s", terr)
	}
	if terr := ep.Bind(s.full(netip.AddrPortFrom(local, port))); terr != nil {
		ep.Close()
		return nil, nil, fmt.Errorf("netstack: bind %v:%d: %s", local, port, terr)
	}
	if remote.IsValid() {
		if terr := ep.Connect(s.full(remote)); terr != nil {
			ep.Close()
			return nil, nil, fmt.Errorf("netstack: connect %v: %s", remote, terr)
		}
	}
	return gonet.NewUDPConn(&wq, ep), ep, nil
}

// Ping sends one ICMP echo request to dst and waits for the reply.
func (s *Stack) Ping(dst netip.Addr, timeout time.Duration) (time.Duration, error) {
	// gonet's datagram connection carries ICMP echo as well as UDP.
	c, _, err := s.Dial(icmp.ProtocolNumber4, 0, netip.AddrPortFrom(dst, 0))
	if err != nil {
		return 0, err
	}
	defer c.Close()
	req := make([]byte, header.ICMPv4MinimumSize+8)
	icmpv4 := header.ICMPv4(req)
	icmpv4.SetType(header.ICMPv4Echo)
	icmpv4.SetSequence(1)
	copy(req[header.ICMPv4MinimumSize:], "tamadump")
	start := time.Now()
	if _, err := c.Write(req); err != nil {
		return 0, err
	}
	c.SetReadDeadline(start.Add(timeout))
	buf := make([]byte, 1500)
	for {
		n, err := c.Read(buf)
		if err != nil {
			return 0, err
		}
		if r := header.ICMPv4(buf[:n]); n >= header.ICMPv4MinimumSize && r.Type() == header.ICMPv4EchoReply {
			return time.Since(start), nil
		}
	}
}

func (s *Stack) full(a netip.AddrPort) tcpip.FullAddress {
	ip := a.Addr().Unmap()
	if ip.Is6() {
		return tcpip.FullAddress{NIC: nicID, Addr: tcpip.AddrFrom16(ip.As16()), Port: a.Port()}
	}
	return tcpip.FullAddress{NIC: nicID, Addr: tcpip.AddrFrom4(ip.As4()), Port: a.Port()}
}
