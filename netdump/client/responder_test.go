package client

import (
	"encoding/binary"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"gvisor.dev/gvisor/pkg/tcpip/header"

	"github.com/tamadump/tamadump/debugnet/linktest"
	"github.com/tamadump/tamadump/netdump/dumptest"
	"github.com/tamadump/tamadump/netdump/wire"
)

func responderConfig() Config {
	return Config{Client: clientAddr, Server: serverPrefix.Addr(), Retries: 2}
}

// allocBody is a body that allocates at every read: the negative control
// of the allocation counts.
type allocBody struct{ Body }

var allocSink []byte

func (b allocBody) Chunk(off int64, max int) []byte {
	allocSink = make([]byte, 16)
	return b.Body.Chunk(off, max)
}

// mallocs runs 3 whole dumps of body over link (after one to warm up)
// and counts the heap allocations made on their way.
func mallocs(t *testing.T, link *linktest.Link, body Body) uint64 {
	t.Helper()
	c, err := New(link, responderConfig())
	if err != nil {
		t.Fatal(err)
	}
	kdh := newKDH("boom")
	if err := c.Dump(body, kdh, 2); err != nil { // warm up: first-use paths
		t.Fatal(err)
	}
	return dumptest.HeapAllocs(func() {
		for range 3 {
			if err := c.Dump(body, kdh, 2); err != nil {
				t.Fatal(err)
			}
		}
	})
}

// TestNoAllocation counts the heap allocations of whole dumps, on a clean
// link and on one that loses a fifth of the frames each way (the loss,
// retransmission and window paths), and per acknowledged packet; a body
// that allocates shows that the counts see an allocation.
func TestNoAllocation(t *testing.T) {
	core := newBody(t, segments(2<<20, 0.5, 9), "boom")
	link, r := dumptest.NewResponder(1500)
	if d := mallocs(t, link, core); d != 0 {
		t.Errorf("%d heap allocations during 3 dumps", d)
	}
	if r.Bytes == 0 {
		t.Fatal("responder saw no data")
	}
	lossy, _ := dumptest.NewResponder(1500)
	lossy.SetFaults(linktest.Faults{Loss: 0.2, Seed: 3})
	if d := mallocs(t, lossy, core); d != 0 {
		t.Errorf("%d heap allocations during 3 dumps over a lossy link", d)
	}
	lists, lr := dumptest.NewResponder(1500)
	lr.Lists = true
	if d := mallocs(t, lists, core); d != 0 {
		t.Errorf("%d heap allocations during 3 dumps acknowledged with ACK lists", d)
	}
	control, _ := dumptest.NewResponder(1500)
	if d := mallocs(t, control, allocBody{core}); d == 0 {
		t.Error("negative control: a body that allocates, and no allocation counted")
	}
	// And per packet: one datagram out, its ACK in.
	perPacket := func(body Body) float64 {
		link, _ := dumptest.NewResponder(1500)
		c, _ := New(link, responderConfig())
		if err := c.conn.Connect(); err != nil {
			t.Fatal(err)
		}
		c.body = body
		c.base, c.next, c.cwnd = 1, 1, 64
		return testing.AllocsPerRun(1000, func() {
			if err := c.exchange(wire.Header{Type: wire.VMCore, Offset: 4096, Len: uint32(c.payload)}); err != nil {
				t.Fatal(err)
			}
		})
	}
	if n := perPacket(core); n != 0 {
		t.Errorf("%v allocations per acknowledged packet", n)
	}
	if n := perPacket(allocBody{core}); n == 0 {
		t.Error("negative control: a body that allocates, and no allocation per packet counted")
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
			inject(dumptest.Frame(buf[:], dumptest.ServerMAC, clientMAC, serverPrefix.Addr(), clientAddr, 20023, wire.ClientPort, seq[:]))
			binary.BigEndian.PutUint32(seq[:], i%400) // plausible, but from another host
			inject(dumptest.Frame(buf[:], stranger, clientMAC, other, clientAddr, 20023, wire.ClientPort, seq[:]))
			inject(dumptest.Frame(buf[:], dumptest.ServerMAC, stranger, serverPrefix.Addr(), other, 20023, wire.ClientPort, seq[:])) // for another MAC
			inject(dumptest.Frame(buf[:], dumptest.ServerMAC, clientMAC, serverPrefix.Addr(), clientAddr, 20023, 9999, seq[:]))      // another port
			inject(dumptest.ARPFrame(buf[:], header.ARPRequest, stranger, [6]byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}, clientAddr, serverPrefix.Addr()))
			inject(buf[:7]) // runt
			bad := dumptest.Frame(buf[:], dumptest.ServerMAC, clientMAC, serverPrefix.Addr(), clientAddr, 20023, wire.ClientPort, seq[:])
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

// acker is a server reduced to its ACKs: it answers ARP, and each
// message with its seqno when answer (called under mu) says so; answer
// may keep the ACK frame to deliver it later.
type acker struct {
	link   *linktest.Link
	mu     sync.Mutex
	answer func(h wire.Header, ack []byte) bool
}

func newAcker(answer func(h wire.Header, ack []byte) bool) *acker {
	a := &acker{link: linktest.New(clientMAC, 1500, 1024, linktest.Faults{}), answer: answer}
	a.link.Attach(a.input)
	return a
}

func (a *acker) input(f []byte) {
	var out [128]byte
	eth := header.Ethernet(f)
	if eth.Type() == header.ARPProtocolNumber {
		if header.ARP(f[header.EthernetMinimumSize:]).Op() == header.ARPRequest {
			a.link.Deliver(dumptest.ARPFrame(out[:], header.ARPReply, dumptest.ServerMAC, clientMAC, serverPrefix.Addr(), clientAddr))
		}
		return
	}
	ip := header.IPv4(f[header.EthernetMinimumSize:])
	h, _, err := wire.ParseMessage(header.UDP(ip.Payload()).Payload())
	if err != nil {
		return
	}
	var seq [4]byte
	binary.BigEndian.PutUint32(seq[:], h.Seqno)
	ack := append([]byte(nil), dumptest.Frame(out[:], dumptest.ServerMAC, clientMAC, serverPrefix.Addr(), clientAddr, 31000, wire.ClientPort, seq[:])...)
	a.mu.Lock()
	now := a.answer(h, ack)
	a.mu.Unlock()
	if now {
		a.link.Deliver(ack)
	}
}

// slowFinisher answers FINISHED only after delay, as a netdumpd does once
// the dump is on disk, and counts the FINISHED datagrams it receives.
type slowFinisher struct {
	*acker
	finished int
}

func newSlowFinisher(delay time.Duration) *slowFinisher {
	s := &slowFinisher{}
	s.acker = newAcker(func(h wire.Header, ack []byte) bool {
		if h.Type != wire.Finished {
			return true
		}
		if s.finished++; s.finished == 1 {
			time.AfterFunc(delay, func() { s.link.Deliver(ack) })
		}
		return false
	})
	return s
}

// TestFinishedWaitsForDurability: a server that takes 200 ms to answer
// FINISHED (netdumpd's fsync, SHA-256 and info file take about 165 ms for
// 64 MiB) gets only the two copies sent at once; one that takes longer
// than the client waits gets it again, which shows the count sees a
// resend.
func TestFinishedWaitsForDurability(t *testing.T) {
	core := newBody(t, segments(1<<20, 0, 4), "boom")
	for _, tc := range []struct {
		delay time.Duration
		want  func(int) bool
		what  string
	}{
		{200 * time.Millisecond, func(n int) bool { return n == 2 }, "twice, at once"},
		{1200 * time.Millisecond, func(n int) bool { return n >= 3 }, "again (negative control)"},
	} {
		s := newSlowFinisher(tc.delay)
		c, err := New(s.link, responderConfig())
		if err != nil {
			t.Fatal(err)
		}
		if err := c.Dump(core, newKDH("boom"), 1); err != nil {
			t.Fatal(err)
		}
		s.mu.Lock()
		n := s.finished
		s.mu.Unlock()
		if !tc.want(n) {
			t.Errorf("FINISHED answered after %v: sent %d times, want %s", tc.delay, n, tc.what)
		}
	}
}

// TestLossOrCongestion: a fifth of the frames lost at random each way
// leaves the window open (losses not taken for congestion), while a
// bottleneck whose queue overflows makes it shrink, and then it loses
// fewer frames there than a fixed window of 64 does.
func TestLossOrCongestion(t *testing.T) {
	core := newBody(t, segments(2<<20, 0, 6), "boom")
	dump := func(f linktest.Faults, window int) (Stats, int) {
		link, _ := dumptest.NewResponder(1500)
		defer link.Close()
		link.SetFaults(f)
		cfg := responderConfig()
		cfg.Retries = 20
		if window != 0 {
			cfg.Window, cfg.MaxWindow = window, window
		}
		c, err := New(link, cfg)
		if err != nil {
			t.Fatal(err)
		}
		if err := c.Dump(core, newKDH("boom"), 2); err != nil {
			t.Fatal(err)
		}
		return c.Stats(), link.Congested()
	}
	st, _ := dump(linktest.Faults{Loss: 0.2, Seed: 5}, 0)
	// Halving per loss episode took hundreds here; a host that stalls
	// the test may make a round look congested now and then.
	if st.Losses > 3 || st.Retransmits == 0 {
		t.Errorf("random loss: %+v; want retransmissions and at most 3 losses taken for congestion", st)
	}
	t.Logf("random loss: %+v", st)
	bottleneck := linktest.Faults{Rate: 20e6, Queue: 32, Seed: 5}
	st, drops := dump(bottleneck, 0)
	_, fixed := dump(bottleneck, 64)
	if st.Losses == 0 || drops >= fixed {
		t.Errorf("bottleneck: %+v, %d frames dropped (a fixed window of 64: %d); want the window cut and fewer drops", st, drops, fixed)
	}
	t.Logf("bottleneck: %d drops, fixed window 64: %d", drops, fixed)
}

// tailDropper drops the first drop copies of the KDH, the last message
// of the body, and counts them.
type tailDropper struct {
	*acker
	copies int
}

func newTailDropper(drop int) *tailDropper {
	d := &tailDropper{}
	d.acker = newAcker(func(h wire.Header, _ []byte) bool {
		if h.Type != wire.KDH {
			return true
		}
		d.copies++
		return d.copies > drop
	})
	return d
}

// TestTailLossProbe: the KDH lost once, with nothing sent after it whose
// ACK would show the loss, is resent by a tail-loss probe, not after its
// timeout; lost with both probes too, its timeout resends it (the
// negative control: the count sees a timeout).
func TestTailLossProbe(t *testing.T) {
	core := newBody(t, segments(1<<20, 0, 4), "boom")
	for _, tc := range []struct {
		drop             int
		probes, timeouts uint64
	}{{1, 1, 0}, {1 + maxProbes, maxProbes, 1}} {
		d := newTailDropper(tc.drop)
		c, err := New(d.link, responderConfig())
		if err != nil {
			t.Fatal(err)
		}
		if err := c.Dump(core, newKDH("boom"), 1); err != nil {
			t.Fatal(err)
		}
		st := c.Stats()
		if st.Probes != tc.probes || st.Timeouts != tc.timeouts || d.copies != tc.drop+1 {
			t.Errorf("KDH lost %d times: %d probes, %d timeouts, %d copies; want %d, %d, %d", tc.drop, st.Probes, st.Timeouts, d.copies, tc.probes, tc.timeouts, tc.drop+1)
		}
	}
}
