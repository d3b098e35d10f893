package usernet

import (
	"bytes"
	"context"
	"errors"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/checksum"
	"gvisor.dev/gvisor/pkg/tcpip/header"

	"github.com/tamadump/tamadump/debugnet/linktest"
	"github.com/tamadump/tamadump/netdump/server"
	"github.com/tamadump/tamadump/netdump/server/servertest"
	"github.com/tamadump/tamadump/netdump/wire"
)

// The stacks use 127.0.0.0/8 addresses: nothing here touches a host
// network, and the project keeps tests inside that range anyway.
var (
	serverPrefix = netip.MustParsePrefix("127.0.9.1/24")
	clientPrefix = netip.MustParsePrefix("127.0.9.2/24")
)

const ackPort = 30024

func newStack(t *testing.T, p netip.Prefix, mtu uint32) *Stack {
	t.Helper()
	s, err := New(Config{Addr: p, MTU: mtu})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	return s
}

// startServer runs a netdump server on st and returns its HERALD address
// and dump directory.
func startServer(t *testing.T, st *Stack) (*server.Server, string) {
	t.Helper()
	dir := t.TempDir()
	srv, err := server.New(server.Config{
		Dir:        dir,
		Listen:     netip.AddrPortFrom(netip.IPv4Unspecified(), 0),
		AckPort:    ackPort,
		Network:    st.Network(),
		LookupAddr: func(context.Context, netip.Addr) (string, error) { return "", errors.New("numeric") },
		Log:        func(l server.Level, m string) { t.Logf("server %s: %s", l, m) },
	})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- srv.Run() }()
	t.Cleanup(func() {
		srv.Close()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	})
	return srv, dir
}

// dumpOver runs one whole dump from the client stack and checks the file.
func dumpOver(t *testing.T, cl *Stack, srv *server.Server, dir string, size int) {
	t.Helper()
	conn, err := cl.ListenUDP(ackPort)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	c := servertest.New(servertest.Packet(conn), srv.Addr())
	if err := c.Herald(""); err != nil {
		t.Fatal("HERALD:", err)
	}
	core := make([]byte, size)
	for i := range core {
		core[i] = byte(i*7 + i>>9)
	}
	chunk := int(cl.MTU()) - wire.Overhead
	var batch []servertest.Msg
	for off := 0; off < len(core); off += chunk {
		batch = append(batch, servertest.Msg{Type: wire.VMCore, Offset: uint64(off), Payload: core[off:min(off+chunk, len(core))]})
		if len(batch) == servertest.MaxInFlight || off+chunk >= len(core) {
			if err := c.Send(batch...); err != nil {
				t.Fatal("VMCORE:", err)
			}
			batch = batch[:0]
		}
	}
	if err := c.Finish(); err != nil {
		t.Fatal("FINISHED:", err)
	}
	name := "vmcore." + cl.Addr().String() + ".0"
	got, err := os.ReadFile(filepath.Join(dir, name))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, core) {
		t.Fatalf("%s: %d bytes, differs from the %d sent", name, len(got), len(core))
	}
}

// TestInProcess joins two stacks frame by frame and dumps between them;
// the client's full 64-datagram batches must all fit the server's queue.
func TestInProcess(t *testing.T) {
	sv := newStack(t, serverPrefix, 0)
	cl := newStack(t, clientPrefix, 0)
	var frames sync.Map
	count := func(tag string) func([]byte) {
		return func(f []byte) {
			if len(f) >= 14 && f[12] == 0x08 && f[13] == 0x06 {
				frames.Store(tag+"-arp", true)
			}
		}
	}
	cntS, cntC := count("server"), count("client")
	sv.Attach(func(f []byte) { cntS(f); cl.Inject(f) })
	cl.Attach(func(f []byte) { cntC(f); sv.Inject(f) })
	srv, dir := startServer(t, sv)
	dumpOver(t, cl, srv, dir, 3<<20)
	if _, ok := frames.Load("server-arp"); !ok {
		t.Error("the server stack sent no ARP")
	}
	if sv.Dropped()+cl.Dropped() != 0 {
		t.Errorf("dropped frames: %d, %d", sv.Dropped(), cl.Dropped())
	}
}

// TestJumbo: payloads beyond FreeBSD netdumpd's 4096-byte limit.
func TestJumbo(t *testing.T) {
	sv := newStack(t, serverPrefix, 9000)
	cl := newStack(t, clientPrefix, 9000)
	sv.Attach(cl.Inject)
	cl.Attach(sv.Inject)
	srv, dir := startServer(t, sv)
	dumpOver(t, cl, srv, dir, 2<<20)
}

// TestDgram joins the stacks through a real pair of unix datagram sockets,
// the transport of QEMU's -netdev dgram.
func TestDgram(t *testing.T) {
	tmp := t.TempDir()
	a := &net.UnixAddr{Name: filepath.Join(tmp, "a"), Net: "unixgram"}
	b := &net.UnixAddr{Name: filepath.Join(tmp, "b"), Net: "unixgram"}
	ca, err := net.ListenUnixgram("unixgram", a)
	if err != nil {
		t.Fatal(err)
	}
	defer ca.Close()
	cb, err := net.ListenUnixgram("unixgram", b)
	if err != nil {
		t.Fatal(err)
	}
	defer cb.Close()
	ca.SetReadBuffer(4 << 20)
	cb.SetReadBuffer(4 << 20)
	sv := newStack(t, serverPrefix, 0)
	cl := newStack(t, clientPrefix, 0)
	sv.AttachDgram(ca, b)
	cl.AttachDgram(cb, a)
	srv, dir := startServer(t, sv)
	dumpOver(t, cl, srv, dir, 2<<20)
}

// TestStream joins the stacks through a unix stream connection with
// QEMU's -netdev stream framing.
func TestStream(t *testing.T) {
	l, err := net.ListenUnix("unix", &net.UnixAddr{Name: filepath.Join(t.TempDir(), "s"), Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	accepted := make(chan net.Conn, 1)
	go func() {
		c, err := l.Accept()
		if err != nil {
			close(accepted)
			return
		}
		accepted <- c
	}()
	dialed, err := net.Dial("unix", l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer dialed.Close()
	var acc net.Conn
	select {
	case acc = <-accepted:
	case <-time.After(5 * time.Second):
		t.Fatal("no accept")
	}
	defer acc.Close()
	sv := newStack(t, serverPrefix, 0)
	cl := newStack(t, clientPrefix, 0)
	sv.AttachStream(acc, linktest.Faults{})
	cl.AttachStream(dialed, linktest.Faults{})
	srv, dir := startServer(t, sv)
	dumpOver(t, cl, srv, dir, 2<<20)
}

// TestGateway: traffic beyond the subnet goes to the gateway, whose MAC
// the stack asks for first. gVisor treats every 127/8 address as on-link,
// so this one uses documentation addresses; no frame leaves the test.
func TestGateway(t *testing.T) {
	gw := netip.MustParseAddr("192.0.2.254")
	s, err := New(Config{Addr: netip.MustParsePrefix("192.0.2.2/24"), Gateway: gw})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	arp := make(chan []byte, 8)
	s.Attach(func(f []byte) {
		if header.Ethernet(f).Type() == header.ARPProtocolNumber {
			arp <- append([]byte(nil), f...)
		}
	})
	c, err := s.DialUDP(0, netip.MustParseAddrPort("198.51.100.5:7"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.Write([]byte("hello")) //nolint:errcheck // resolution is what is tested
	select {
	case f := <-arp:
		target := header.ARP(f[header.EthernetMinimumSize:]).ProtocolAddressTarget()
		if netip.AddrFrom4([4]byte(target)) != gw {
			t.Fatalf("ARP for %v, want the gateway %v", target, gw)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no ARP request for the gateway")
	}
}

// TestBadChecksums: a datagram whose payload changed after its checksum
// was taken is dropped and counted, and the same datagram intact is
// delivered and not (the count tests use to show a guest sends none).
func TestBadChecksums(t *testing.T) {
	st := newStack(t, serverPrefix, 0)
	conn, err := st.ListenUDP(ackPort)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	frame := func(corrupt bool) []byte {
		payload := []byte("netdump data, summed then changed")
		f := make([]byte, header.EthernetMinimumSize+header.IPv4MinimumSize+header.UDPMinimumSize+len(payload))
		header.Ethernet(f).Encode(&header.EthernetFields{SrcAddr: "\x02\x00\x7f\x00\x09\x02", DstAddr: tcpip.LinkAddress(st.MAC()), Type: header.IPv4ProtocolNumber})
		ip := header.IPv4(f[header.EthernetMinimumSize:])
		src, dst := tcpip.AddrFrom4(clientPrefix.Addr().As4()), tcpip.AddrFrom4(st.Addr().As4())
		ip.Encode(&header.IPv4Fields{TotalLength: uint16(len(f) - header.EthernetMinimumSize), TTL: 64, Protocol: uint8(header.UDPProtocolNumber), SrcAddr: src, DstAddr: dst})
		ip.SetChecksum(^ip.CalculateChecksum())
		u := header.UDP(ip.Payload())
		u.Encode(&header.UDPFields{SrcPort: 20024, DstPort: ackPort, Length: uint16(len(u))})
		copy(u.Payload(), payload)
		xsum := header.PseudoHeaderChecksum(header.UDPProtocolNumber, src, dst, uint16(len(u)))
		u.SetChecksum(^u.CalculateChecksum(checksum.Checksum(u.Payload(), xsum)))
		if corrupt {
			u.Payload()[3] ^= 0x40
		}
		return f
	}
	for _, corrupt := range []bool{true, false} {
		before := st.BadChecksums()
		st.Inject(frame(corrupt))
		conn.SetReadDeadline(time.Now().Add(200 * time.Millisecond))
		_, _, rerr := conn.ReadFrom(make([]byte, 100))
		if bad := st.BadChecksums() - before; bad != map[bool]uint64{true: 1, false: 0}[corrupt] || (rerr == nil) == corrupt {
			t.Errorf("corrupt %v: counted %d bad, read error %v", corrupt, bad, rerr)
		}
	}
}
