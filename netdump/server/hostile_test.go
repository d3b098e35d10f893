package server

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tamadump/tamadump/netdump/server/servertest"
	"github.com/tamadump/tamadump/netdump/wire"
)

// TestMalformed: runts, size mismatches and unexpected types are logged
// with netdumpd's texts (at most once a second each: a flood must not
// flood the log), counted, never acknowledged, and do not keep a session
// alive.
func TestMalformed(t *testing.T) {
	h := newHarness(t, func(c *Config) {
		c.Timeout = 700 * time.Millisecond
		c.TPass = 50 * time.Millisecond
	})
	c := h.client(1)
	if err := c.Herald(""); err != nil {
		t.Fatal(err)
	}
	if err := c.Send(servertest.Msg{Type: wire.VMCore, Payload: []byte("x")}); err != nil {
		t.Fatal(err)
	}
	hdr := func(typ wire.MsgType, seq, length uint32) []byte {
		b := make([]byte, wire.HeaderSize)
		wire.Header{Type: typ, Seqno: seq, Len: length}.Put(b)
		return b
	}
	bad := []struct {
		pkt    []byte
		log    string
		reason string
	}{
		{[]byte("short"), "Ignoring runt packet from 127.0.21.1 (got 5)", dropRunt},
		{append(hdr(wire.VMCore, 50, 100), make([]byte, 50)...), "Bad packet size from 127.0.21.1", dropSize},
		{hdr(9, 51, 0), "Received unexpected message type ", dropType},
		{hdr(wire.Herald, 52, 0), "Received unexpected message type ", dropType},
	}
	// Sent for longer than the idle timeout: the session must still time
	// out, as none of these count as traffic.
	start := time.Now()
	sent := 0
	for time.Since(start) < 1200*time.Millisecond && h.log.count("timed out") == 0 {
		for _, b := range bad {
			c.SendRaw(b.pkt)
		}
		sent++
		time.Sleep(20 * time.Millisecond)
	}
	for i, b := range bad {
		if h.log.count(b.log) == 0 {
			t.Errorf("no %q in log:\n%s", b.log, h.log)
		}
		if c.Expect(uint32(50+i), 0) {
			t.Errorf("%q acknowledged", b.log)
		}
	}
	h.log.waitLog(t, "Client 127.0.21.1 timed out", 1)
	if n := h.log.count("Ignoring runt packet"); n > 3 {
		t.Errorf("%d runt lines for %d runts in about a second", n, sent)
	}
	// The last round may come after the session ended.
	for reason, want := range map[string]int{dropRunt: sent - 1, dropSize: sent - 1, dropType: 2 * (sent - 1)} {
		if got := h.counter(t, "netdumpd_dropped_total", reason); int(got) < want {
			t.Errorf("dropped{%s} = %v, want at least %d", reason, got, want)
		}
	}
	info := string(h.read("info.127.0.21.1.0"))
	if !strings.HasSuffix(info, "Missing ranges: unknown beyond 0x0 (no kernel dump header)\nDump incomplete: client timed out\n") {
		t.Errorf("info:\n%s", info)
	}
}

// TestLargePayload: a payload of the largest size a UDP datagram can
// carry is accepted (FreeBSD's netdumpd stops at 4096), as the first
// data and after smaller data. With UDP_GRO the session's read buffers
// hold 64 KiB from the start; without, they are sized for a 9000-byte
// MTU, cut the first such datagram (unacknowledged: the client sends it
// again) and grow.
func TestLargePayload(t *testing.T) {
	for _, gro := range []bool{true, false} {
		t.Run(fmt.Sprintf("gro=%v", gro), func(t *testing.T) { largePayload(t, gro) })
	}
}

func largePayload(t *testing.T, gro bool) {
	h := newHarness(t, func(c *Config) {
		if !gro {
			c.Network = noGRONetwork
		}
	})
	c := h.client(1)
	for i, first := range []int{wire.MaxPayload, 1000} {
		if err := c.Herald(""); err != nil {
			t.Fatal(err)
		}
		big := pattern(3+i, wire.MaxPayload)
		small := big[:first]
		if first == wire.MaxPayload {
			small = big[:1000]
		}
		msgs := []servertest.Msg{
			{Type: wire.VMCore, Offset: 0, Payload: big[:first]},
			{Type: wire.VMCore, Offset: uint64(first), Payload: big},
			{Type: wire.VMCore, Offset: uint64(first + wire.MaxPayload), Payload: small},
		}
		for _, m := range msgs {
			if err := c.Send(m); err != nil {
				t.Fatal(err)
			}
		}
		if err := c.Finish(); err != nil {
			t.Fatal(err)
		}
		var want []byte
		for _, m := range msgs {
			want = append(want, m.Payload...)
		}
		if got := h.read(fmt.Sprintf("vmcore.127.0.21.1.%d", i)); !bytes.Equal(got, want) {
			t.Errorf("dump %d: vmcore: %d bytes", i, len(got))
		}
		// Without GRO, once per session: its first large datagram
		// after the first.
		cuts := float64(i + 1)
		if gro {
			cuts = 0
		}
		if got := h.counter(t, "netdumpd_dropped_total", dropCut); got != cuts {
			t.Errorf("dump %d: dropped{%s} = %v", i, dropCut, got)
		}
	}
}

// TestHeraldPath: the client's directory is honoured only inside the dump
// directory; anything else falls back to the default path.
func TestHeraldPath(t *testing.T) {
	root := t.TempDir()
	dumps := filepath.Join(root, "crash")
	for _, d := range []string{"crash/sub/deep", "crash/def", "outside"} {
		os.MkdirAll(filepath.Join(root, d), 0o755)
	}
	os.Symlink("/", filepath.Join(dumps, "toroot"))
	os.Symlink("..", filepath.Join(dumps, "up"))
	os.Symlink("sub", filepath.Join(dumps, "alias"))
	os.Symlink("../outside", filepath.Join(dumps, "sub", "out"))
	h := newHarness(t, func(c *Config) { c.Dir = dumps; c.DefaultPath = "def" })
	h.dir = dumps
	for i, tc := range []struct{ path, dir string }{
		{"sub", "sub"},
		{"sub/deep/", "sub/deep"},
		{"alias", "alias"}, // a symlink that stays inside
		{"../outside", "def"},
		{"/etc", "def"},
		{"/tmp", "def"},
		{"toroot", "def"},
		{"toroot/tmp", "def"},
		{"up", "def"},
		{"up/outside", "def"},
		{"sub/out", "def"},
		{"sub/../sub", "def"},
		{"missing", "def"}, // never created
		{"", "def"},
	} {
		c := h.client(byte(10 + i))
		ip := netip.AddrFrom4([4]byte{127, 0, 21, byte(10 + i)}).String()
		if err := c.Herald(tc.path); err != nil {
			t.Fatalf("%q: %v", tc.path, err)
		}
		if err := c.Send(servertest.Msg{Type: wire.VMCore, Payload: []byte(tc.path + "!")}); err != nil {
			t.Fatal(err)
		}
		if err := c.Finish(); err != nil {
			t.Fatal(err)
		}
		got, err := os.ReadFile(filepath.Join(dumps, tc.dir, "vmcore."+ip+".0"))
		if err != nil || string(got) != tc.path+"!" {
			t.Errorf("HERALD path %q: %q, %v; want it in %s", tc.path, got, err, tc.dir)
		}
		warned := h.log.count("Can't create output files in path for client "+ip) > 0
		if warned != (tc.dir == "def" && tc.path != "") {
			t.Errorf("HERALD path %q: fallback warning %v", tc.path, warned)
		}
	}
	for _, d := range []string{filepath.Join(root, "outside"), "/tmp", filepath.Join(dumps, "missing")} {
		if m, _ := filepath.Glob(filepath.Join(d, "*.127.0.21.*")); len(m) > 0 {
			t.Errorf("files escaped into %s: %v", d, m)
		}
	}
}

// TestNoOutputFiles: when even the default path is unusable, the first
// data is not acknowledged (the files are made then, not at the HERALD).
func TestNoOutputFiles(t *testing.T) {
	h := newHarness(t, func(c *Config) { c.DefaultPath = "absent" })
	c := h.client(1)
	c.Retries = 1
	c.RTO = 100 * time.Millisecond
	if err := c.Herald("also-absent"); err != nil {
		t.Fatal(err)
	}
	if err := c.Send(servertest.Msg{Type: wire.VMCore, Payload: []byte("x")}); err == nil {
		t.Fatal("data acknowledged")
	}
	h.log.waitLog(t, "Can't create output files for new client 127.0.21.1 [127.0.21.1]", 1)
}

// TestHeraldRetransmit: a HERALD repeated with its seqno is answered
// again from the same port without a new dump. A new HERALD from the
// address of a dump in progress is ignored while the dump is heard from,
// and starts a new dump once it was silent for TakeoverAfter; the old one
// ends, files kept apart.
func TestHeraldRetransmit(t *testing.T) {
	script, out := handlerScript(t)
	h := newHarness(t, func(c *Config) {
		c.Handler = script
		c.TakeoverAfter = 400 * time.Millisecond
	})
	c := h.client(1)
	if err := c.Herald(""); err != nil {
		t.Fatal(err)
	}
	port := c.DataAddr()
	herald := make([]byte, wire.HeaderSize)
	wire.Header{Type: wire.Herald, Seqno: 1}.Put(herald)
	c.SendRawTo(herald, h.srv.Addr())
	if !c.Expect(1, 2*time.Second) {
		t.Fatal("retransmitted HERALD not acknowledged")
	}
	old := pattern(1, 3000)
	if err := c.Send(servertest.Msg{Type: wire.EKCDKey, Payload: []byte("key")}, servertest.Msg{Type: wire.VMCore, Payload: old}); err != nil {
		t.Fatal(err)
	}
	c.SendRawTo(herald, h.srv.Addr())
	if !c.Expect(1, 2*time.Second) {
		t.Fatal("retransmitted HERALD not acknowledged after data")
	}
	if n := h.log.count("New dump"); n != 1 {
		t.Fatalf("%d dumps started", n)
	}

	// A HERALD with another seqno while the dump is live: ignored, and
	// the dump goes on on its port.
	other := make([]byte, wire.HeaderSize)
	wire.Header{Type: wire.Herald, Seqno: 77}.Put(other)
	c.SendRawTo(other, h.srv.Addr())
	if c.Expect(77, 200*time.Millisecond) {
		t.Fatal("HERALD acknowledged during a live dump")
	}
	h.log.waitLog(t, "Ignoring HERALD from 127.0.21.1: its dump is in progress", 1)
	if err := c.Send(servertest.Msg{Type: wire.VMCore, Offset: 3000, Payload: old[:10]}); err != nil || c.DataAddr() != port {
		t.Fatalf("dump after the ignored HERALD: %v", err)
	}

	// The client rebooted and dumps again; its HERALD retransmissions
	// get through once the old dump is silent long enough.
	if err := c.Herald(""); err != nil {
		t.Fatal(err)
	}
	if c.DataAddr() == port {
		t.Error("new dump on the old port")
	}
	h.log.waitLog(t, "Client 127.0.21.1 started a new dump", 1)
	fresh := pattern(2, 2000)
	if err := c.Send(servertest.Msg{Type: wire.VMCore, Payload: fresh}); err != nil {
		t.Fatal(err)
	}
	if err := c.Finish(); err != nil {
		t.Fatal(err)
	}
	if got := h.read("vmcore.127.0.21.1.0"); !bytes.Equal(got, append(old, old[:10]...)) {
		t.Errorf("vmcore.0: %d bytes", len(got))
	}
	if got := h.read("vmcore.127.0.21.1.1"); !bytes.Equal(got, fresh) {
		t.Errorf("vmcore.1: %d bytes", len(got))
	}
	if info := string(h.read("info.127.0.21.1.0")); !strings.HasSuffix(info, "Dump incomplete: the client started a new dump\n") {
		t.Errorf("old dump not closed:\n%s", info)
	}
	h.log.waitLog(t, "exited with status 0", 2)
	if a, _ := handlerRuns(t, out, "timeout"); len(a) != 1 || a[0][5] != "./vmcore.127.0.21.1.0" {
		t.Errorf("timeout handler runs: %v", a)
	}
}

// TestHeraldFlood is attack 4: one-packet HERALDs, valid and not, from
// 200 addresses. Before, each made a socket and three files at once and
// they stayed for the idle timeout. Now: no file is made for a session
// without data, at most MaxHalfOpen of them exist (the oldest dropped),
// and a real client dumps in the middle of the flood.
func TestHeraldFlood(t *testing.T) {
	h := newHarness(t, func(c *Config) { c.MaxHalfOpen = 16 })
	// A client that has its ACK when the flood comes keeps its session.
	early := h.client(3)
	if err := early.Herald(""); err != nil {
		t.Fatal(err)
	}
	fds := openFDs(t)
	const n = 200
	valid := make([]byte, wire.HeaderSize)
	wire.Header{Type: wire.Herald, Seqno: 1}.Put(valid)
	for i := range n {
		c := h.client(byte(20 + i))
		c.SendRawTo(valid, h.srv.Addr())
		c.SendRawTo(valid[:10], h.srv.Addr())
		c.SendRawTo(append(valid[:wire.HeaderSize:wire.HeaderSize], 1, 2), h.srv.Addr())
	}
	h.log.waitLog(t, "netdump_cap_herald(): Invalid argument", 2*n)
	for deadline := time.Now().Add(10 * time.Second); h.counter(t, "netdumpd_heralds_total", "accepted")+h.counter(t, "netdumpd_heralds_total", "refused") < n+1; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("%v HERALDs accepted", h.counter(t, "netdumpd_heralds_total", "accepted"))
		}
	}
	if got := h.counter(t, "netdumpd_sessions", "half_open"); got != 16 {
		t.Errorf("%v half-open sessions, want the limit 16", got)
	}
	if got := h.counter(t, "netdumpd_limit_hits_total", limitHalfOpen); got != n-15 {
		t.Errorf("half_open limit hit %v times, want %d", got, n-15)
	}
	if err := early.Send(servertest.Msg{Type: wire.VMCore, Payload: []byte("early")}); err != nil {
		t.Fatal("the client that had its ACK before the flood:", err)
	}
	if err := early.Finish(); err != nil {
		t.Fatal(err)
	}
	// The flood's sockets: 16 plus the 200 client sockets of this test.
	if got := openFDs(t) - fds; got > n+16+4 {
		t.Errorf("%d more descriptors open", got)
	}
	c := h.client(2)
	if err := c.Herald(""); err != nil {
		t.Fatal(err)
	}
	core := pattern(5, 50000)
	if err := sendAll(c, core, 1448); err != nil {
		t.Fatal(err)
	}
	if err := c.Finish(); err != nil {
		t.Fatal(err)
	}
	if got := h.read("vmcore.127.0.21.2.0"); !bytes.Equal(got, core) {
		t.Error("vmcore differs")
	}
	if m, _ := filepath.Glob(filepath.Join(h.dir, "*")); len(m) != 10 {
		t.Errorf("files: %v", m)
	}
}

// TestNumbering: the bounds file picks the number when it can; otherwise
// the lowest free one is used. Aborted dumps keep their number.
func TestNumbering(t *testing.T) {
	h := newHarness(t, func(c *Config) { c.TakeoverAfter = 100 * time.Millisecond })
	c := h.client(1)
	bounds := filepath.Join(h.dir, "bounds.127.0.21.1")
	dumpOnce := func(finish bool) {
		t.Helper()
		if err := c.Herald(""); err != nil {
			t.Fatal(err)
		}
		if err := c.Send(servertest.Msg{Type: wire.VMCore, Payload: []byte("x")}); err != nil {
			t.Fatal(err)
		}
		if finish {
			if err := c.Finish(); err != nil {
				t.Fatal(err)
			}
		}
	}
	next := func() string { b, _ := os.ReadFile(bounds); return string(b) }

	os.WriteFile(bounds, []byte("7\n"), 0o600)
	dumpOnce(true)
	if next() != "8\n" || !exists(h.dir, "info.127.0.21.1.7") {
		t.Errorf("bounds 7: next %q", next())
	}
	os.WriteFile(bounds, []byte("garbage"), 0o600)
	dumpOnce(false) // aborted below by the next HERALD: number 0 is used up
	if next() != "1\n" || h.log.count("Invalid bound for client 127.0.21.1 [127.0.21.1]: 'garbage'") != 1 {
		t.Errorf("garbage: next %q\n%s", next(), h.log)
	}
	os.WriteFile(bounds, []byte("0\n"), 0o600)
	dumpOnce(true) // info.0 exists
	if next() != "2\n" || h.log.count("Incorrect bounds file for client 127.0.21.1 [127.0.21.1]") != 1 || !exists(h.dir, "info.127.0.21.1.1") {
		t.Errorf("taken: next %q\n%s", next(), h.log)
	}
	os.WriteFile(bounds, []byte("99999999999\n"), 0o600)
	dumpOnce(true)
	if next() != "3\n" {
		t.Errorf("too large: next %q", next())
	}
	os.WriteFile(bounds, []byte("1500"), 0o600) // beyond MAX_DUMPS is used as is
	dumpOnce(true)
	if next() != "1501\n" || !exists(h.dir, "vmcore.127.0.21.1.1500") {
		t.Errorf("1500: next %q", next())
	}
	if !strings.HasSuffix(string(h.read("info.127.0.21.1.0")), "Dump incomplete: the client started a new dump\n") {
		t.Error("aborted dump 0 not closed")
	}
}

func exists(dir, name string) bool {
	_, err := os.Lstat(filepath.Join(dir, name))
	return err == nil
}

// TestBadKDH: a short KDH is acknowledged and noted in the info file.
func TestBadKDH(t *testing.T) {
	h := newHarness(t, nil)
	c := h.client(1)
	if err := c.Herald(""); err != nil {
		t.Fatal(err)
	}
	if err := c.Send(servertest.Msg{Type: wire.KDH, Payload: make([]byte, 100)}); err != nil {
		t.Fatal(err)
	}
	if err := c.Finish(); err != nil {
		t.Fatal(err)
	}
	want := "Dump from 127.0.21.1 [127.0.21.1]\nBad KDH: packet too small\nMissing ranges: unknown (no kernel dump header)\nSHA256: " + sha(nil) + "\nDump complete\n"
	if got := string(h.read("info.127.0.21.1.0")); got != want {
		t.Errorf("info:\n%s", got)
	}
	if h.log.count("Bad KDH from 127.0.21.1 [127.0.21.1]: packet too small") != 1 {
		t.Error(h.log)
	}
}

// TestHostileOffsets: offsets near 2^64 end the dump as a write error
// instead of wrapping.
func TestHostileOffsets(t *testing.T) {
	h := newHarness(t, nil)
	c := h.client(1)
	c.Retries = 1
	c.RTO = 100 * time.Millisecond
	if err := c.Herald(""); err != nil {
		t.Fatal(err)
	}
	b := make([]byte, 8)
	binary.BigEndian.PutUint64(b, 1)
	if err := c.Send(servertest.Msg{Type: wire.VMCore, Offset: 1<<64 - 4, Payload: b}); err == nil {
		t.Error("wrapping write acknowledged")
	}
	if got := string(h.read("info.127.0.21.1.0")); !strings.Contains(got, "Dump unsuccessful: write error @ offset fffffffffffffffc: Invalid argument\n") {
		t.Errorf("info:\n%s", got)
	}
}

// TestProgressDot: a "." is logged at every 11522nd seqno, as netdumpd
// does.
func TestProgressDot(t *testing.T) {
	h := newHarness(t, nil)
	c := h.client(1)
	if err := c.Herald(""); err != nil {
		t.Fatal(err)
	}
	for _, seq := range []uint32{11521, 11522, 11523, 2 * 11522} {
		b, _ := wire.AppendMessage(make([]byte, 64), wire.Header{Type: wire.VMCore, Seqno: seq, Offset: uint64(seq)}, []byte{1})
		c.SendRaw(b)
		if !c.Expect(seq, 2*time.Second) {
			t.Fatalf("seqno %d not acknowledged", seq)
		}
	}
	if n := h.log.count("info: ."); n != 2 {
		t.Errorf("%d dots", n)
	}
}

// TestDestinationAddress: on a wildcard socket the HERALD's destination
// (IP_PKTINFO) becomes the per-client socket's source, which is the only
// source the client accepts.
func TestDestinationAddress(t *testing.T) {
	h := newHarness(t, func(c *Config) { c.Listen = netip.MustParseAddrPort("0.0.0.0:0") })
	to := netip.AddrPortFrom(netip.MustParseAddr("127.0.21.5"), h.srv.Addr().Port())
	c := h.clientTo(1, to)
	if err := c.Herald(""); err != nil {
		t.Fatal(err)
	}
	if c.DataAddr().Addr() != to.Addr() {
		t.Errorf("ACK from %v, want %v", c.DataAddr(), to.Addr())
	}
	if err := c.Send(servertest.Msg{Type: wire.VMCore, Payload: []byte("multi-homed")}); err != nil {
		t.Fatal(err)
	}
	if err := c.Finish(); err != nil {
		t.Fatal(err)
	}
	if got := string(h.read("vmcore.127.0.21.1.0")); got != "multi-homed" {
		t.Errorf("vmcore: %q", got)
	}
}

// TestOpenNoSymlinks: the fallback for kernels without openat2 opens plain
// subdirectories and refuses every symlink.
func TestOpenNoSymlinks(t *testing.T) {
	root := t.TempDir()
	os.MkdirAll(filepath.Join(root, "a/b"), 0o755)
	os.Symlink("a", filepath.Join(root, "link"))
	os.Symlink("/", filepath.Join(root, "a/root"))
	dir, err := openDumpDir(root)
	if err != nil {
		t.Fatal(err)
	}
	defer dir.Close()
	for path, ok := range map[string]bool{"a": true, "a/b": true, "./a//b/": true, "link": false, "a/root": false, "a/root/tmp": false, "none": false} {
		f, err := openNoSymlinks(dir, path)
		if (err == nil) != ok {
			t.Errorf("%q: %v", path, err)
		}
		if f != nil {
			f.Close()
		}
	}
}
