// Package usernet is a user-space host built on gVisor's netstack: one
// Ethernet NIC with an IPv4 address, answering ARP, and optionally an IPv6
// one (with its link-local address, answering neighbour discovery),
// carrying UDP. Its
// frames are exchanged with the outside in process (Inject and Attach),
// with a QEMU `-netdev dgram` socket (AttachDgram) or a QEMU `-netdev
// stream` connection (AttachStream). Network puts a netdump server on it,
// so a guest can dump to a server that needs no host networking.
//
// QEMU side, for AttachDgram(conn bound at H, peer Q):
//
//	-netdev dgram,id=n0,local.type=unix,local.path=Q,remote.type=unix,remote.path=H
//
// and for AttachStream(c), c accepted on a unix socket listening at S:
//
//	-netdev stream,id=n0,server=off,addr.type=unix,addr.path=S
package usernet

import (
	"context"
	"errors"
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

	out     atomic.Pointer[func([]byte)]
	dropped atomic.Uint64
	cancel  context.CancelFunc
	pumped  sync.WaitGroup
}

// New starts a stack.
func New(cfg Config) (*Stack, error) {
	if !cfg.Addr.IsValid() || !cfg.Addr.Addr().Is4() {
		return nil, fmt.Errorf("usernet: %v is not an IPv4 prefix", cfg.Addr)
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
		return nil, fmt.Errorf("usernet: bad MAC %v", mac)
	}
	if cfg.Addr6.IsValid() && !cfg.Addr6.Addr().Is6() {
		return nil, fmt.Errorf("usernet: %v is not an IPv6 prefix", cfg.Addr6)
	}
	st := stack.New(stack.Options{
		NetworkProtocols: []stack.NetworkProtocolFactory{
			// Loopback-range addresses are accepted on the NIC so
			// that tests can stay inside 127.0.0.0/8.
			ipv4.NewProtocolWithOptions(ipv4.Options{AllowExternalLoopbackTraffic: true}),
			arp.NewProtocol,
			// Addresses are usable at once: no duplicate address
			// detection (a zero DADConfigs) delays them.
			ipv6.NewProtocolWithOptions(ipv6.Options{AutoGenLinkLocal: true, AllowExternalLoopbackTraffic: true}),
		},
		TransportProtocols: []stack.TransportProtocolFactory{udp.NewProtocol, icmp.NewProtocol4},
	})
	ep := channel.New(txQueue, cfg.MTU+header.EthernetMinimumSize, tcpip.LinkAddress(mac))
	if err := st.CreateNIC(nicID, ethernet.New(ep)); err != nil {
		st.Close()
		return nil, fmt.Errorf("usernet: CreateNIC: %s", err)
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
		return nil, fmt.Errorf("usernet: AddProtocolAddress: %s", err)
	}
	routes := []tcpip.Route{{Destination: pa.AddressWithPrefix.Subnet(), NIC: nicID}}
	var addr6 netip.Addr
	if cfg.Addr6.IsValid() {
		addr6 = cfg.Addr6.Addr()
		pa6 := tcpip.ProtocolAddress{Protocol: ipv6.ProtocolNumber, AddressWithPrefix: tcpip.AddressWithPrefix{
			Address: tcpip.AddrFrom16(addr6.As16()), PrefixLen: cfg.Addr6.Bits()}}
		if err := st.AddProtocolAddress(nicID, pa6, stack.AddressProperties{}); err != nil {
			st.Close()
			return nil, fmt.Errorf("usernet: AddProtocolAddress: %s", err)
		}
		routes = append(routes, tcpip.Route{Destination: pa6.AddressWithPrefix.Subnet(), NIC: nicID})
	}
	routes = append(routes, tcpip.Route{Destination: header.IPv6LinkLocalPrefix.Subnet(), NIC: nicID})
	if cfg.Gateway.Is4() {
		routes = append(routes, tcpip.Route{Destination: header.IPv4EmptySubnet, Gateway: tcpip.AddrFrom4(cfg.Gateway.As4()), NIC: nicID})
	}
	st.SetRouteTable(routes)
	ctx, cancel := context.WithCancel(context.Background())
	ll := header.LinkLocalAddr(tcpip.LinkAddress(mac)).As16()
	s := &Stack{st: st, ep: ep, addr: addr, addr6: addr6, ll6: netip.AddrFrom16(ll), mac: mac, mtu: cfg.MTU, cancel: cancel}
	s.pumped.Add(1)
	go s.pump(ctx)
	return s, nil
}

// Addr is the host's address.
func (s *Stack) Addr() netip.Addr { return s.addr }

// Addr6 is the host's IPv6 address (invalid without one) and LinkLocal6
// its link-local one.
func (s *Stack) Addr6() netip.Addr      { return s.addr6 }
func (s *Stack) LinkLocal6() netip.Addr { return s.ll6 }

// MAC is the NIC's address.
func (s *Stack) MAC() net.HardwareAddr { return s.mac }

// MTU is the IP MTU.
func (s *Stack) MTU() uint32 { return s.mtu }

// Stack is the gVisor stack, for other gonet users.
func (s *Stack) Stack() *stack.Stack { return s.st }

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
func (s *Stack) Attach(out func(frame []byte)) { s.out.Store(&out) }

func (s *Stack) pump(ctx context.Context) {
	defer s.pumped.Done()
	frame := make([]byte, 0, s.mtu+header.EthernetMinimumSize)
	for {
		pkt := s.ep.ReadContext(ctx)
		if pkt == nil {
			return
		}
		frame = frame[:0]
		for _, v := range pkt.AsSlices() {
			frame = append(frame, v...)
		}
		pkt.DecRef()
		if out := s.out.Load(); out != nil {
			(*out)(frame)
		} else {
			s.dropped.Add(1)
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
	c, _, err := s.dial(udp.ProtocolNumber, s.addr, port, netip.AddrPort{})
	return c, err
}

// ListenUDPOn is ListenUDP on one of the host's addresses (IPv4, IPv6 or
// link-local).
func (s *Stack) ListenUDPOn(local netip.Addr, port uint16) (*gonet.UDPConn, error) {
	if !s.local(local) {
		return nil, errNotLocal
	}
	c, _, err := s.dial(udp.ProtocolNumber, local, port, netip.AddrPort{})
	return c, err
}

// DialUDP opens a UDP socket on the host's address of remote's family
// connected to remote.
func (s *Stack) DialUDP(port uint16, remote netip.AddrPort) (*gonet.UDPConn, error) {
	local := s.addr
	if remote.Addr().Is6() {
		local = s.addr6
	}
	c, _, err := s.dial(udp.ProtocolNumber, local, port, remote)
	return c, err
}

// local reports whether a is one of the host's addresses.
func (s *Stack) local(a netip.Addr) bool {
	a = a.Unmap().WithZone("")
	return a.IsValid() && (a == s.addr || a == s.addr6 || a == s.ll6)
}

// dial opens a datagram endpoint (UDP, or ICMP echo) on local, one of the
// host's addresses, as gonet.DialUDP but keeping the endpoint, whose
// options gonet hides.
func (s *Stack) dial(proto tcpip.TransportProtocolNumber, local netip.Addr, port uint16, remote netip.AddrPort) (*gonet.UDPConn, tcpip.Endpoint, error) {
	var wq waiter.Queue
	netProto := ipv4.ProtocolNumber
	if local.Unmap().Is6() {
		netProto = ipv6.ProtocolNumber
	}
	ep, terr := s.st.NewEndpoint(proto, netProto, &wq)
	if terr != nil {
		return nil, nil, fmt.Errorf("usernet: %s", terr)
	}
	if terr := ep.Bind(s.full(netip.AddrPortFrom(local, port))); terr != nil {
		ep.Close()
		return nil, nil, fmt.Errorf("usernet: bind %v:%d: %s", local, port, terr)
	}
	if remote.IsValid() {
		if terr := ep.Connect(s.full(remote)); terr != nil {
			ep.Close()
			return nil, nil, fmt.Errorf("usernet: connect %v: %s", remote, terr)
		}
	}
	return gonet.NewUDPConn(&wq, ep), ep, nil
}

// Ping sends one ICMP echo request to dst and waits for the reply.
func (s *Stack) Ping(dst netip.Addr, timeout time.Duration) (time.Duration, error) {
	// gonet's datagram connection carries ICMP echo as well as UDP.
	c, _, err := s.dial(icmp.ProtocolNumber4, s.addr, 0, netip.AddrPortFrom(dst, 0))
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

var errNotLocal = errors.New("usernet: not this host's address")
