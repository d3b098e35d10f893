package server

import (
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/tamadump/tamadump/netdump/server/servertest"
	"github.com/tamadump/tamadump/netdump/wire"
)

// The attacks of issue 15, each against the behaviour that used to fail.

// cpuTime is this process's user+system CPU time.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// TestClaimedLengths is attacks 1 and 5. Claims cost nothing: a KDH
// whose length is 8 GiB after one VMCORE used to make FINISHED read back
// and hash the sparse file (26 s of CPU); a 24-byte message declaring
// 4 GiB of zeros cost 2.3 s; four packets made a 15 TiB vmcore and an
// EKCD_KEY at 2^32-1 a 4 GiB key file. The work is measured where it is
// done (bytes hashed as zeros, bytes read back); an honest in-budget
// zero run is the negative control that the counters see it.
func TestClaimedLengths(t *testing.T) {
	h := newHarness(t, nil)
	start := cpuTime()

	c := h.client(1)
	if err := c.Herald(""); err != nil {
		t.Fatal(err)
	}
	if err := c.Send(servertest.Msg{Type: wire.VMCore, Payload: pattern(1, page)}); err != nil {
		t.Fatal(err)
	}
	k := newKDH(8<<30, wire.CompressNone, 0)
	if err := c.Send(servertest.Msg{Type: wire.KDH, Payload: kdhBytes(&k)}); err != nil {
		t.Fatal(err)
	}
	if err := c.Finish(); err != nil {
		t.Fatal("FINISHED after an 8 GiB KDH:", err)
	}
	info := string(h.read("info.127.0.21.1.0"))
	if !strings.Contains(info, "Missing ranges: 0x1000-0x1ffffffff\n") || !strings.Contains(info, "SHA256: not computed") {
		t.Errorf("info:\n%s", info)
	}

	c2 := h.client(2)
	if err := c2.Herald(""); err != nil {
		t.Fatal(err)
	}
	if err := c2.Send(servertest.Msg{Type: wire.VMCore, Offset: 0, Aux2: 1<<32 - page}); err != nil {
		t.Fatal(err)
	}
	if err := c2.Finish(); err != nil {
		t.Fatal("FINISHED after a 4 GiB zero run:", err)
	}
	zeros, back := h.counter(t, "netdumpd_digest_zero_bytes_total", ""), h.counter(t, "netdumpd_read_back_bytes_total", "")
	if zeros > 2*zeroBase+zeroRatio*page || back > 0 {
		t.Errorf("%v zero bytes hashed, %v bytes read back for one page of data", zeros, back)
	}
	t.Logf("CPU for both claims: %v (the old server: 2.1 s for the zero run alone, and no FINISHED ACK within 3 s)", cpuTime()-start)

	// Negative control: zeros the data paid for are hashed, and counted.
	c3 := h.client(3)
	if err := c3.Herald(""); err != nil {
		t.Fatal(err)
	}
	if err := sendAll(c3, pattern(3, 16*page), 1448); err != nil {
		t.Fatal(err)
	}
	if err := c3.Send(servertest.Msg{Type: wire.VMCore, Offset: 16 * page, Aux2: 512 * page}); err != nil {
		t.Fatal(err)
	}
	if err := c3.Finish(); err != nil {
		t.Fatal(err)
	}
	if got := h.counter(t, "netdumpd_digest_zero_bytes_total", "") - zeros; got != 512*page {
		t.Errorf("%v zero bytes hashed for an honest 2 MiB zero run", got)
	}
	if info := string(h.read("info.127.0.21.3.0")); !strings.Contains(info, "SHA256: "+sha(append(pattern(3, 16*page), make([]byte, 512*page)...))) {
		t.Errorf("honest info:\n%s", info)
	}

	// Beyond the dump size limit: refused, nothing written there.
	for i, m := range []servertest.Msg{
		{Type: wire.VMCore, Offset: 15 << 40, Payload: []byte("far")},
		{Type: wire.VMCore, Offset: 0, Aux2: 1<<32 - page},
		{Type: wire.EKCDKey, Offset: 1<<32 - 1, Payload: []byte("k")},
	} {
		c := h.client(byte(10 + i))
		c.Retries, c.RTO = 1, 100*time.Millisecond
		if err := c.Herald(""); err != nil {
			t.Fatal(err)
		}
		if i == 1 {
			// A limit of its own: the header says the dump is small.
			k := newKDH(page, wire.CompressNone, 0)
			if err := c.Send(servertest.Msg{Type: wire.KDH, Payload: kdhBytes(&k)}); err != nil {
				t.Fatal(err)
			}
		}
		if err := c.Send(m); err == nil {
			t.Errorf("message %d beyond the limits acknowledged", i)
		}
		ip := fmt.Sprintf("127.0.21.%d", 10+i)
		if st, err := os.Stat(filepath.Join(h.dir, "vmcore."+ip+".0")); err != nil || st.Size() != 0 {
			t.Errorf("%s: vmcore %v, %v", ip, st.Size(), err)
		}
		if exists(h.dir, "key."+ip+".0") {
			t.Errorf("%s: key file made", ip)
		}
		if info := string(h.read("info." + ip + ".0")); !strings.Contains(info, "Dump unsuccessful: ") {
			t.Errorf("%s info:\n%s", ip, info)
		}
	}
	if got := h.counter(t, "netdumpd_limit_hits_total", limitDumpSize); got != 2 {
		t.Errorf("dump_size limit hit %v times", got)
	}
	if got := h.counter(t, "netdumpd_limit_hits_total", limitKeySize); got != 1 {
		t.Errorf("key_size limit hit %v times", got)
	}
	// A header announcing more than the limit ends the dump at once.
	c4 := h.client(20)
	c4.Retries, c4.RTO = 1, 100*time.Millisecond
	if err := c4.Herald(""); err != nil {
		t.Fatal(err)
	}
	huge := newKDH(1<<40, wire.CompressNone, 0)
	if err := c4.Send(servertest.Msg{Type: wire.KDH, Payload: kdhBytes(&huge)}); err == nil {
		t.Error("a 1 TiB header acknowledged")
	}
}

// TestCloseDuringDump: shutting down never waits on a client: a dump
// whose data arrived after a gap ends at once, nothing is read back.
func TestCloseDuringDump(t *testing.T) {
	h := newHarness(t, nil)
	c := h.client(1)
	if err := c.Herald(""); err != nil {
		t.Fatal(err)
	}
	core := pattern(1, 64*page)
	var batch []servertest.Msg
	for off := page; off+4*page <= len(core); off += 4 * page {
		batch = append(batch, servertest.Msg{Type: wire.VMCore, Offset: uint64(off), Payload: core[off : off+4*page]})
	}
	if err := c.Send(batch...); err != nil {
		t.Fatal(err)
	}
	h.close()
	if got := h.counter(t, "netdumpd_read_back_bytes_total", ""); got != 0 {
		t.Errorf("%v bytes read back at shutdown", got)
	}
	if info := string(h.read("info.127.0.21.1.0")); !strings.HasSuffix(info, statusStopped+"\n") {
		t.Errorf("info:\n%s", info)
	}
}

// TestSpansReverse is attack 2 on the coverage: 160k one-byte ranges at
// decreasing offsets (28.6 s of CPU before) stay one range, and every
// range added touches O(log n) of the tree.
func TestSpansReverse(t *testing.T) {
	s := newSpans()
	const n = 160000
	for i := n - 1; i >= 0; i-- {
		s.add(uint64(2*i+1), uint64(2*i+2), dataKind)
	}
	for i := n - 1; i >= 0; i-- {
		s.add(uint64(2*i), uint64(2*i+1), dataKind)
	}
	if s.Len() != 1 {
		t.Fatalf("%d ranges", s.Len())
	}
	if got := s.describe(2*n, true, 4); got != "none" {
		t.Errorf("missing %s", got)
	}
}

// TestSpansModel checks spans against a byte map on random operations.
func TestSpansModel(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for round := range 200 {
		s := newSpans()
		model := make([]kind, 300)
		for range 40 {
			a := uint64(r.IntN(290))
			if e := s.end(); r.IntN(3) == 0 && e < 290 {
				a = e + uint64(r.IntN(2)) // in order, as most dumps arrive
			}
			b := a + 1 + uint64(r.IntN(10))
			k := kind(1 + r.IntN(2))
			var pieces []span
			s.visit(a, b, func(x, y uint64, k kind) { pieces = append(pieces, span{x, y, k}) })
			next := a
			for _, p := range pieces {
				if p.start != next {
					t.Fatalf("round %d: visit pieces %v of [%d,%d)", round, pieces, a, b)
				}
				for i := p.start; i < p.end; i++ {
					if model[i] != p.kind {
						t.Fatalf("round %d: byte %d is %d, visit says %d", round, i, model[i], p.kind)
					}
				}
				next = p.end
			}
			if next != b {
				t.Fatalf("round %d: visit ends at %d, want %d", round, next, b)
			}
			if got, want := s.overlaps(a, b), hasAny(model[a:b]); got != want {
				t.Fatalf("round %d: overlaps(%d,%d) = %v", round, a, b, got)
			}
			s.add(a, b, k)
			for i := a; i < b; i++ {
				if model[i] == gap {
					model[i] = k
				}
			}
		}
		// The tree matches the model, merged maximally.
		var prev span
		s.t.Ascend(func(sp span) bool {
			if sp.start < prev.end || sp.start == prev.end && sp.kind == prev.kind && prev.end != 0 {
				t.Fatalf("round %d: ranges %v then %v", round, prev, sp)
			}
			for i := sp.start; i < sp.end; i++ {
				if model[i] != sp.kind {
					t.Fatalf("round %d: byte %d is %d, tree says %d", round, i, model[i], sp.kind)
				}
			}
			prev = sp
			return true
		})
		held := 0
		s.t.Ascend(func(sp span) bool { held += int(sp.end - sp.start); return true })
		want := 0
		for _, k := range model {
			if k != gap {
				want++
			}
		}
		if held != want {
			t.Fatalf("round %d: %d bytes held, model %d", round, held, want)
		}
	}
}

func hasAny(k []kind) bool {
	for _, x := range k {
		if x != gap {
			return true
		}
	}
	return false
}

// TestReverseBytes is attack 2 over the network: one-byte VMCOREs at
// decreasing offsets; the dump is exact and complete.
func TestReverseBytes(t *testing.T) {
	h := newHarness(t, nil)
	c := h.client(1)
	if err := c.Herald(""); err != nil {
		t.Fatal(err)
	}
	const n = 8192
	core := pattern(9, n)
	for end := n; end > 0; end -= servertest.MaxInFlight {
		var batch []servertest.Msg
		for off := end - 1; off >= end-servertest.MaxInFlight; off-- {
			batch = append(batch, servertest.Msg{Type: wire.VMCore, Offset: uint64(off), Payload: core[off : off+1]})
		}
		if err := c.Send(batch...); err != nil {
			t.Fatal(err)
		}
	}
	k := newKDH(n, wire.CompressNone, 0)
	if err := c.Send(servertest.Msg{Type: wire.KDH, Payload: kdhBytes(&k)}); err != nil {
		t.Fatal(err)
	}
	if err := c.Finish(); err != nil {
		t.Fatal(err)
	}
	if got := h.read("vmcore.127.0.21.1.0"); !bytes.Equal(got, core) {
		t.Error("vmcore differs")
	}
	if info := string(h.read("info.127.0.21.1.0")); !strings.Contains(info, "Missing ranges: none\nSHA256: "+sha(core)+"\n") {
		t.Errorf("info:\n%s", info)
	}
}

// TestSlowLookups is attack 3: PTR lookups that hang (here until the
// test ends) for six addresses. A real client's dump goes through while
// they hang: no client waits for another's lookup. The netdumpd behaviour
// (lookups in the HERALD loop) made it wait 30 s.
func TestSlowLookups(t *testing.T) {
	release := make(chan struct{})
	hung := make(chan netip.Addr, 16)
	h := newHarness(t, func(c *Config) {
		c.LookupTimeout = time.Hour
		c.LookupAddr = func(ctx context.Context, ip netip.Addr) (string, error) {
			if ip.As4()[3] == 2 {
				return "honest.example.org", nil
			}
			hung <- ip
			select {
			case <-release:
			case <-ctx.Done():
			}
			return "", ctx.Err()
		}
	})
	defer close(release)
	for i := range 6 {
		a := h.client(byte(100 + i))
		if err := a.Herald(""); err != nil {
			t.Fatal(err)
		}
		if i == 0 {
			// This one's first data waits for its own lookup.
			raw, _ := wire.AppendMessage(make([]byte, 2048), wire.Header{Type: wire.VMCore, Seqno: 2}, []byte("x"))
			a.SendRaw(raw)
		}
	}
	for range 6 {
		<-hung
	}
	c := h.client(2)
	if err := c.Herald(""); err != nil {
		t.Fatal(err)
	}
	core := pattern(2, 20000)
	if err := sendAll(c, core, 1448); err != nil {
		t.Fatal(err)
	}
	if err := c.Finish(); err != nil {
		t.Fatal(err)
	}
	if got := h.read("vmcore.honest.0"); !bytes.Equal(got, core) {
		t.Error("vmcore differs")
	}
	select {
	case <-release:
		t.Fatal("lookups ended early")
	default:
	}
}

// TestCraftedKDH is attack 8: header text fields with newlines used to
// write their own "Dump complete" and "SHA256:" lines into the info file.
func TestCraftedKDH(t *testing.T) {
	h := newHarness(t, nil)
	c := h.client(1)
	if err := c.Herald(""); err != nil {
		t.Fatal(err)
	}
	k := newKDH(page, wire.CompressNone, 0)
	wire.SetText(k.Hostname[:], "evil\nDump complete\nSHA256: 00")
	wire.SetText(k.PanicString[:], "boom\r\n\x1b[2J\\x")
	k.SetVersionString("v\nMissing ranges: none\n")
	if err := c.Send(servertest.Msg{Type: wire.KDH, Payload: kdhBytes(&k)}); err != nil {
		t.Fatal(err)
	}
	h.close() // incomplete: the lines it forged would lie
	info := string(h.read("info.127.0.21.1.0"))
	for _, line := range strings.Split(info, "\n") {
		if strings.HasPrefix(line, "Dump complete") || strings.HasPrefix(line, "SHA256") || strings.HasPrefix(line, "Missing ranges: none") {
			t.Errorf("forged line %q in info:\n%s", line, info)
		}
		for _, r := range line {
			if r < 0x20 || r >= 0x7f {
				t.Errorf("control or non-ASCII byte %q in info line %q", r, line)
			}
		}
	}
	for _, want := range []string{`  Hostname: evil\nDump complete\nSHA256: 00`, `  Panic String: boom\r\n\x1b[2J\\x`, `  Version String: v\nMissing ranges: none`} {
		if !strings.Contains(info, want+"\n") {
			t.Errorf("info lacks %q:\n%s", want, info)
		}
	}
}

// TestPlantedFiles is attack 9: a regular file, a hard link to a file
// elsewhere and a symlink named like the next dump's files. They are
// skipped, never written through; the dump takes the next free number.
func TestPlantedFiles(t *testing.T) {
	h := newHarness(t, nil)
	outside := filepath.Join(t.TempDir(), "precious")
	os.WriteFile(outside, []byte("keep me"), 0o600)
	os.WriteFile(filepath.Join(h.dir, "vmcore.127.0.21.1.0"), []byte("planted"), 0o600)
	os.Link(outside, filepath.Join(h.dir, "vmcore.127.0.21.1.1"))
	os.Symlink(outside, filepath.Join(h.dir, "info.127.0.21.1.2"))
	os.Symlink(outside, filepath.Join(h.dir, "key.127.0.21.1.3"))
	c := h.client(1)
	if err := c.Herald(""); err != nil {
		t.Fatal(err)
	}
	if err := c.Send(servertest.Msg{Type: wire.EKCDKey, Payload: []byte("key")}, servertest.Msg{Type: wire.VMCore, Payload: []byte("dump")}); err != nil {
		t.Fatal(err)
	}
	if err := c.Finish(); err != nil {
		t.Fatal(err)
	}
	if got := string(h.read("vmcore.127.0.21.1.4")); got != "dump" {
		t.Errorf("dump went to %q", got)
	}
	if got := string(h.read("key.127.0.21.1.4")); got != "key" {
		t.Errorf("key: %q", got)
	}
	if b, _ := os.ReadFile(outside); string(b) != "keep me" {
		t.Errorf("planted link written through: %q", b)
	}
	if got := string(h.read("vmcore.127.0.21.1.0")); got != "planted" {
		t.Errorf("planted file: %q", got)
	}
}

func newSpoofer(t *testing.T) servertest.Spoofer {
	sp, err := servertest.NewSpoofer()
	if err != nil {
		t.Skipf("SKIP: no raw socket for forged sources: %v", err)
	}
	t.Cleanup(func() { sp.Close() })
	return sp
}

// TestForgedData is attack 10: a blind sweep of datagrams forged from
// the victim's address and port over the session ports, a HERALD forged
// from the victim's address, and datagrams from its address on another
// port. Bytes already received are kept, the rewrites are recorded in
// the info file (it used to say "Dump complete" over foreign bytes), the
// HERALD does not end the dump, the other port is not heard.
func TestForgedData(t *testing.T) {
	h := newHarness(t, nil)
	sp := newSpoofer(t)
	c := h.client(1)
	victim := netip.AddrPortFrom(netip.MustParseAddr("127.0.21.1"), h.ackPort)
	if err := c.Herald(""); err != nil {
		t.Fatal(err)
	}
	core := pattern(1, 32*page)
	if err := sendAll(c, core[:16*page], 1448); err != nil {
		t.Fatal(err)
	}
	port := c.DataAddr()
	forged, _ := wire.AppendMessage(make([]byte, 2048), wire.Header{Type: wire.VMCore, Seqno: 9999, Offset: 2 * page}, bytes.Repeat([]byte("EVIL"), 256))
	ahead, _ := wire.AppendMessage(make([]byte, 2048), wire.Header{Type: wire.VMCore, Seqno: 9998, Offset: 20 * page}, bytes.Repeat([]byte("evil"), 256))
	for p := int(port.Port()) - 20; p <= int(port.Port())+20; p++ {
		to := netip.AddrPortFrom(port.Addr(), uint16(p))
		sp.Send(victim, to, forged)
		sp.Send(victim, to, ahead)
		sp.Send(netip.AddrPortFrom(victim.Addr(), 9), to, forged)
	}
	herald, _ := wire.AppendMessage(make([]byte, 2048), wire.Header{Type: wire.Herald, Seqno: 17}, nil)
	sp.Send(netip.AddrPortFrom(victim.Addr(), 40000), h.srv.Addr(), herald)
	h.log.waitLog(t, "Ignoring HERALD from 127.0.21.1", 1)
	var batch []servertest.Msg
	for off := 16 * page; off < len(core); off += 1448 {
		batch = append(batch, servertest.Msg{Type: wire.VMCore, Offset: uint64(off), Payload: core[off:min(off+1448, len(core))]})
		if len(batch) == 46 || off+1448 >= len(core) {
			if err := c.Send(batch...); err != nil {
				t.Fatal(err)
			}
			batch = batch[:0]
		}
	}
	if err := c.Finish(); err != nil {
		t.Fatal(err)
	}
	got := h.read("vmcore.127.0.21.1.0")
	if !bytes.Equal(got[:16*page], core[:16*page]) {
		t.Error("bytes received first were rewritten")
	}
	info := string(h.read("info.127.0.21.1.0"))
	// The forged block ahead came first there: the client's own bytes
	// then conflict, and both forgeries are on record.
	var n int
	if i := strings.Index(info, "Conflicting rewrites: "); i < 0 || !strings.Contains(info, "0x2000-0x23ff") {
		t.Errorf("info:\n%s", info)
	} else if fmt.Sscanf(info[i:], "Conflicting rewrites: %d", &n); n < 2 {
		t.Errorf("info:\n%s", info)
	}
	if got := h.counter(t, "netdumpd_conflicting_rewrites_total", ""); got < 2 {
		t.Errorf("%v conflicts counted", got)
	}
}

// TestDumpDirGone: a deleted dump directory used to make every later
// client fail until a restart. HERALDs are refused with a log line
// while it is gone and served once it is back.
func TestDumpDirGone(t *testing.T) {
	h := newHarness(t, nil)
	os.RemoveAll(h.dir)
	c := h.client(1)
	c.Retries, c.RTO = 2, 200*time.Millisecond
	if err := c.Herald(""); err == nil {
		t.Fatal("HERALD acknowledged without a dump directory")
	}
	h.log.waitLog(t, "Dump directory "+h.dir+": No such file or directory", 1)
	os.Mkdir(h.dir, 0o755)
	c.Retries = 10
	if err := c.Herald(""); err != nil {
		t.Fatal(err)
	}
	if err := c.Send(servertest.Msg{Type: wire.VMCore, Payload: []byte("back")}); err != nil {
		t.Fatal(err)
	}
	if err := c.Finish(); err != nil {
		t.Fatal(err)
	}
	if got := string(h.read("vmcore.127.0.21.1.0")); got != "back" {
		t.Errorf("vmcore %q", got)
	}
	if h.counter(t, "netdumpd_limit_hits_total", limitDir) == 0 {
		t.Error("dump_dir limit not counted")
	}
}

// TestFullDisk is attack 6 on a real, small file system: the dump that
// fills it ends with "No space left" in its info; HERALDs that come
// after are refused with a log line instead of a hanging session with an
// empty info; freeing space lets the next client in.
func TestFullDisk(t *testing.T) {
	dir := t.TempDir()
	if err := unix.Mount("tmpfs", dir, "tmpfs", 0, "size=1m"); err != nil {
		t.Skipf("SKIP: cannot mount a tmpfs: %v", err)
	}
	t.Cleanup(func() { unix.Unmount(dir, unix.MNT_DETACH) })
	h := newHarness(t, func(c *Config) { c.Dir = dir; c.MinFree = 128 << 10 })
	h.dir = dir
	big := h.client(1)
	big.Retries, big.RTO = 1, 100*time.Millisecond
	if err := big.Herald(""); err != nil {
		t.Fatal(err)
	}
	if err := sendAll(big, pattern(1, 2<<20), 1448); err == nil {
		t.Fatal("2 MiB acknowledged on a 1 MiB file system")
	}
	h.log.waitLog(t, "No space left on device", 1)
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		if info := string(h.read("info.127.0.21.1.0")); strings.Contains(info, "Dump unsuccessful: write error @ offset ") && strings.HasSuffix(info, ": No space left on device\n") {
			break
		} else if time.Now().After(deadline) {
			t.Fatalf("info:\n%s", info)
		}
	}
	late := h.client(2)
	late.Retries, late.RTO = 3, 300*time.Millisecond
	if err := late.Herald(""); err == nil {
		t.Fatal("HERALD acknowledged on a full disk")
	}
	h.log.waitLog(t, "Ignoring HERALD from 127.0.21.2: dump directory "+dir+": No space left on device", 1)
	if exists(dir, "info.127.0.21.2.0") {
		t.Error("files made for a refused client")
	}
	os.Remove(filepath.Join(dir, "vmcore.127.0.21.1.0"))
	late.Retries = 10
	if err := late.Herald(""); err != nil {
		t.Fatal(err)
	}
	if err := late.Send(servertest.Msg{Type: wire.VMCore, Payload: []byte("room again")}); err != nil {
		t.Fatal(err)
	}
	if err := late.Finish(); err != nil {
		t.Fatal(err)
	}
	h.log.waitLog(t, "is usable again", 1)
}

// TestRestartMarksIncomplete: a dump left "in progress" (netdumpd was
// killed) is marked when a server starts on the directory; finished ones
// are left alone.
func TestRestartMarksIncomplete(t *testing.T) {
	dir := t.TempDir()
	sub := filepath.Join(dir, "sub")
	os.Mkdir(sub, 0o755)
	os.WriteFile(filepath.Join(sub, "info.box.3"), []byte("Dump from box [127.0.21.9]\n"+statusInProgress+"\n"), 0o600)
	os.WriteFile(filepath.Join(sub, "vmcore.box.3"), []byte("partial"), 0o600)
	os.WriteFile(filepath.Join(dir, "info.box.0"), []byte("Dump from box [127.0.21.9]\nDump complete\n"), 0o600)
	os.WriteFile(filepath.Join(dir, ".info.box.1.0123abcd.tmp"), []byte("x"), 0o600)
	var got []Ended
	h := newHarness(t, func(c *Config) {
		c.Dir = dir
		c.Ended = func(e Ended) { got = append(got, e) }
	})
	h.dir = dir
	want := "Dump from box [127.0.21.9]\nMissing ranges: unknown (" + stoppedWhy + ")\n" + statusStopped + "\n"
	if info := string(h.read("sub/info.box.3")); info != want {
		t.Errorf("info:\n%s", info)
	}
	if info := string(h.read("info.box.0")); info != "Dump from box [127.0.21.9]\nDump complete\n" {
		t.Errorf("complete dump touched:\n%s", info)
	}
	if exists(dir, ".info.box.1.0123abcd.tmp") {
		t.Error("temporary file left")
	}
	h.close()
	if len(got) != 1 || got[0].Reason != "timeout" || !got[0].Recovered || got[0].Dir != sub || got[0].Core != "vmcore.box.3" ||
		got[0].Info != "info.box.3" || got[0].Index != 3 || got[0].Client != netip.MustParseAddr("127.0.21.9") {
		t.Errorf("events: %+v", got)
	}
}

// BenchmarkSpansReverse adds disjoint one-byte ranges at decreasing
// offsets (attack 2's worst case: nothing merges). ns/op grows with
// log n (and cache misses) as b.N grows, not with n as a sorted slice's.
func BenchmarkSpansReverse(b *testing.B) {
	s := newSpans()
	for i := b.N; i > 0; i-- {
		s.add(uint64(2*i), uint64(2*i+1), dataKind)
	}
	if s.Len() != b.N {
		b.Fatal(s.Len())
	}
}

// TestNoDigest: with NoDigest the vmcore is written whole and the info
// file says its SHA-256 was not computed; without it (the control) the
// same dump has its digest.
func TestNoDigest(t *testing.T) {
	for _, off := range []bool{false, true} {
		h := newHarness(t, func(c *Config) { c.NoDigest = off })
		c := h.client(1)
		if err := c.Herald(""); err != nil {
			t.Fatal(err)
		}
		core := pattern(5, 32*page)
		var batch []servertest.Msg
		for o := 0; o < len(core); o += page {
			batch = append(batch, servertest.Msg{Type: wire.VMCore, Offset: uint64(o), Payload: core[o : o+page]})
		}
		k := newKDH(uint64(len(core)), wire.CompressNone, 0)
		batch = append(batch, servertest.Msg{Type: wire.KDH, Payload: kdhBytes(&k)})
		if err := c.Send(batch...); err != nil {
			t.Fatal(err)
		}
		if err := c.Finish(); err != nil {
			t.Fatal(err)
		}
		if got := h.read("vmcore.127.0.21.1.0"); !bytes.Equal(got, core) {
			t.Errorf("NoDigest %v: vmcore differs", off)
		}
		want := "SHA256: " + sha(core) + "\n"
		if off {
			want = "SHA256: not computed (netdumpd -no-digest)\n"
		}
		if info := string(h.read("info.127.0.21.1.0")); !strings.Contains(info, want) || !strings.Contains(info, "Dump complete\n") {
			t.Errorf("NoDigest %v: info:\n%s", off, info)
		}
		h.close()
	}
}
