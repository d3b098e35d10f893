package main

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tamadump/tamadump/netdump/server/servertest"
	"github.com/tamadump/tamadump/netdump/wire"
)

// TestSoak runs the netdumpd binary against 32 honest clients on lossy
// links and, at the same time, every network attack of issue 15: claimed
// lengths, one-byte VMCOREs at decreasing offsets, a HERALD flood from 90
// addresses, data beyond the size limits, a crafted header, a planted
// hard link, a flooder over the rate limit, forged data and a forged
// HERALD from a victim's address, malformed datagrams. Every honest dump
// must be byte-exact; every limit must have been hit and counted; the
// server's descriptors and memory come back to their idle values. (The
// full disk and the deleted directory stop every client by design and
// are tested on their own.)
func TestSoak(t *testing.T) {
	if testing.Short() {
		t.Skip("SKIP: soak test in -short mode")
	}
	ip := net.IPv4(127, 0, 21, 250)
	dir := t.TempDir()
	ackPort := freePort(t, ip)
	outside := filepath.Join(t.TempDir(), "precious")
	os.WriteFile(outside, []byte("keep me"), 0o600)
	os.Link(outside, filepath.Join(dir, "vmcore.127.0.21.5.0"))
	d := startDaemon(t, ip, dir, ackPort, "-metrics", "127.0.21.250:0", "-max-sessions", "48", "-max-half-open", "40",
		"-half-open-timeout", "1s", "-timeout", "3s", "-tpass", "200ms", "-max-dump", "64M", "-rate", "16M")
	metricsURL := d.find("Serving metrics on ")
	metricsURL = metricsURL[strings.Index(metricsURL, "http://"):]
	pid := d.cmd.Process.Pid
	scrape(t, metricsURL) // the HTTP server's first allocations belong to idle
	time.Sleep(300 * time.Millisecond)
	idleFDs, idleRSS := fdCount(t, pid), rssOf(t, pid)
	deadline := time.Now().Add(time.Minute)

	var wg sync.WaitGroup
	errs := make(chan error, 100)
	run := func(name string, f func() error) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := f(); err != nil {
				errs <- fmt.Errorf("%s: %v", name, err)
			}
		}()
	}
	client := func(host byte, loss float64) *servertest.Client {
		conn := clientConn(t, net.IPv4(127, 0, 21, host), ackPort)
		var c servertest.Conn = servertest.UDP(conn)
		if loss > 0 {
			c = servertest.Lossy(c, loss, uint64(host))
		}
		cl := servertest.New(c, d.herald())
		cl.Retries = 20
		return cl
	}

	// The honest clients.
	const honest = 32
	cores := make([][]byte, honest)
	victimPort := make(chan netip.AddrPort, 1)
	victimGo := make(chan struct{})
	for i := range honest {
		core := servertest.Pattern(100+i, 640<<10+i*4096)
		if i%4 == 0 {
			clear(core[128<<10 : 256<<10])
		}
		cores[i] = core
		c := client(byte(1+i), 0.03)
		run(fmt.Sprintf("honest %d", i), func() error {
			if err := c.Herald(""); err != nil {
				return err
			}
			for off := 0; off < len(core); {
				var batch []servertest.Msg
				for len(batch) < 46 && off < len(core) {
					if i%4 == 0 && off == 128<<10 {
						batch = append(batch, servertest.Msg{Type: wire.VMCore, Offset: uint64(off), Aux2: 128 << 10})
						off += 128 << 10
						continue
					}
					end := min(off+1448, len(core))
					if i%4 == 0 && off < 128<<10 {
						end = min(end, 128<<10)
					}
					batch = append(batch, servertest.Msg{Type: wire.VMCore, Offset: uint64(off), Payload: core[off:end]})
					off = end
				}
				if err := c.Send(batch...); err != nil {
					return err
				}
				if i == 0 && off <= 46*1448 {
					victimPort <- c.DataAddr()
					<-victimGo
				}
			}
			k := kdh(uint64(len(core)), "honest")
			if err := c.Send(servertest.Msg{Type: wire.KDH, Payload: k}); err != nil {
				return err
			}
			return c.Finish()
		})
	}

	// Claimed lengths within the size limit: a 60 MiB zero run on one
	// page of data, and a header saying 60 MiB.
	run("claims", func() error {
		c := client(100, 0)
		if err := c.Herald(""); err != nil {
			return err
		}
		if err := c.Send(servertest.Msg{Type: wire.VMCore, Payload: servertest.Pattern(1, 4096)}, servertest.Msg{Type: wire.VMCore, Offset: 4096, Aux2: 60 << 20}); err != nil {
			return err
		}
		if err := c.Send(servertest.Msg{Type: wire.KDH, Payload: kdh(60<<20+4096, "claims")}); err != nil {
			return err
		}
		return c.Finish()
	})
	// Beyond the limits: refused.
	for i, m := range []servertest.Msg{
		{Type: wire.VMCore, Offset: 15 << 40, Payload: []byte("far")},
		{Type: wire.VMCore, Offset: 0, Aux2: 1<<32 - 4096},
		{Type: wire.EKCDKey, Offset: 1<<32 - 1, Payload: []byte("k")},
	} {
		c := client(byte(101+i), 0)
		c.Retries, c.RTO = 1, 200*time.Millisecond
		run(fmt.Sprintf("limit %d", i), func() error {
			if err := c.Herald(""); err != nil {
				return err
			}
			if c.Send(m) == nil {
				return fmt.Errorf("%+v acknowledged", m.Offset)
			}
			return nil
		})
	}
	// One-byte VMCOREs at decreasing offsets.
	run("reverse", func() error {
		c := client(104, 0)
		if err := c.Herald(""); err != nil {
			return err
		}
		const n = 16384
		for end := n; end > 0; end -= 64 {
			var batch []servertest.Msg
			for off := end - 1; off >= end-64; off-- {
				batch = append(batch, servertest.Msg{Type: wire.VMCore, Offset: uint64(off), Payload: []byte{byte(off)}})
			}
			if err := c.Send(batch...); err != nil {
				return err
			}
		}
		return c.Finish()
	})
	// A crafted header, malformed datagrams.
	run("crafted", func() error {
		c := client(105, 0)
		if err := c.Herald(""); err != nil {
			return err
		}
		for range 100 {
			c.SendRaw([]byte("runt"))
			c.SendRaw(make([]byte, 30))
		}
		if err := c.Send(servertest.Msg{Type: wire.KDH, Payload: kdh(4096, "x\nDump complete\nSHA256: 0")}); err != nil {
			return err
		}
		return c.Finish()
	})
	// A flooder over its rate.
	run("flooder", func() error {
		c := client(106, 0)
		if err := c.Herald(""); err != nil {
			return err
		}
		payload := servertest.Pattern(7, 1448)
		for off := 0; off < 24<<20; {
			var batch []servertest.Msg
			for range 64 {
				batch = append(batch, servertest.Msg{Type: wire.VMCore, Offset: uint64(off), Payload: payload})
				off += len(payload)
			}
			if err := c.Send(batch...); err != nil {
				return err
			}
		}
		return c.Finish()
	})
	// A HERALD flood from 90 addresses, 10 each.
	run("herald flood", func() error {
		for a := 110; a < 200; a++ {
			conn := clientConn(t, net.IPv4(127, 0, 21, byte(a)), 0)
			for s := range 10 {
				b := make([]byte, wire.HeaderSize)
				wire.Header{Type: wire.Herald, Seqno: uint32(1 + s)}.Put(b)
				conn.WriteToUDPAddrPort(b, d.herald())
			}
		}
		return nil
	})
	// Forged data from the victim's address and port over its session's
	// port and the ports around it, at an offset it already sent; a
	// forged HERALD from its address; forged data from its address on
	// another port.
	run("forger", func() error {
		port := <-victimPort
		defer close(victimGo)
		sp, err := servertest.NewSpoofer()
		if err != nil {
			return nil // no raw sockets: nothing to forge with
		}
		defer sp.Close()
		victim := netip.AddrPortFrom(netip.MustParseAddr("127.0.21.1"), uint16(ackPort))
		forged, _ := wire.AppendMessage(make([]byte, 2048), wire.Header{Type: wire.VMCore, Seqno: 7777, Offset: 0}, bytes.Repeat([]byte("EVIL"), 256))
		for p := int(port.Port()) - 10; p <= int(port.Port())+10; p++ {
			sp.Send(victim, netip.AddrPortFrom(port.Addr(), uint16(p)), forged)
			sp.Send(netip.AddrPortFrom(victim.Addr(), 9), netip.AddrPortFrom(port.Addr(), uint16(p)), forged)
		}
		herald, _ := wire.AppendMessage(make([]byte, 64), wire.Header{Type: wire.Herald, Seqno: 4242}, nil)
		sp.Send(netip.AddrPortFrom(victim.Addr(), 40000), d.herald(), herald)
		return nil
	})

	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(time.Until(deadline)):
		t.Fatal("the soak did not finish within a minute")
	}
	close(errs)
	for err := range errs {
		t.Error(err)
	}

	for i, core := range cores {
		host := fmt.Sprintf("127.0.21.%d", 1+i)
		n := 0
		if i == 4 {
			n = 1 // number 0 is the planted link
		}
		if got := d.read(fmt.Sprintf("vmcore.%s.%d", host, n)); !bytes.Equal(got, core) {
			t.Errorf("%s: vmcore of %d bytes differs from the %d sent", host, len(got), len(core))
		}
		sum := sha256.Sum256(core)
		if info := string(d.read(fmt.Sprintf("info.%s.%d", host, n))); !strings.HasSuffix(info, "Dump complete\n") || !strings.Contains(info, "Missing ranges: none\n") ||
			!strings.Contains(info, "SHA256: "+hex.EncodeToString(sum[:])+"\n") {
			t.Errorf("%s info:\n%s", host, info)
		}
	}
	if b, _ := os.ReadFile(outside); string(b) != "keep me" {
		t.Errorf("planted link written through: %q", b)
	}
	if info := string(d.read("info.127.0.21.1.0")); !strings.Contains(info, "Conflicting rewrites: ") {
		t.Logf("victim info (no conflict recorded: raw sockets unavailable?):\n%s", info)
	}
	if info := string(d.read("info.127.0.21.105.0")); strings.Count(info, "\nDump complete") != 1 {
		t.Errorf("crafted info:\n%s", info)
	}

	m := scrape(t, metricsURL)
	for _, name := range []string{
		`netdumpd_limit_hits_total{limit="half_open"}`, `netdumpd_limit_hits_total{limit="dump_size"}`,
		`netdumpd_limit_hits_total{limit="key_size"}`, `netdumpd_limit_hits_total{limit="rate"}`,
		`netdumpd_dropped_total{reason="runt"}`, `netdumpd_dropped_total{reason="bad_size"}`,
	} {
		if m[name] == 0 {
			t.Errorf("%s is 0", name)
		}
	}
	if got := m["netdumpd_digest_zero_bytes_total"]; got < 8*128<<10 {
		t.Errorf("%v zero bytes hashed: the honest zero runs were not", got)
	}
	if got := m[`netdumpd_dumps_total{result="success"}`]; got < honest+4 {
		t.Errorf("%v successful dumps", got)
	}
	t.Logf("metrics: %v", m)

	// Back to idle: the flood's half-open sessions time out, completed
	// ones stop lingering.
	var fds, rss int
	for end := time.Now().Add(30 * time.Second); time.Now().Before(end); time.Sleep(200 * time.Millisecond) {
		fds, rss = fdCount(t, pid), rssOf(t, pid)
		if fds <= idleFDs && rss <= idleRSS+idleSlack {
			break
		}
	}
	t.Logf("idle: %d fds, %d KiB RSS; after: %d fds, %d KiB RSS", idleFDs, idleRSS>>10, fds, rss>>10)
	if fds > idleFDs {
		t.Errorf("%d descriptors open after the soak, %d when idle", fds, idleFDs)
	}
	if rss > idleRSS+idleSlack {
		t.Errorf("RSS %d KiB after the soak, %d KiB when idle", rss>>10, idleRSS>>10)
	}
}

// idleSlack is how far above its idle RSS the server may stay: the Go
// runtime keeps some freed memory (about 10% over its heap goal).
const idleSlack = 8 << 20

func fdCount(t *testing.T, pid int) int {
	ents, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	if err != nil {
		t.Fatal(err)
	}
	return len(ents)
}

func rssOf(t *testing.T, pid int) int {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "VmRSS:"); ok {
			kb, _ := strconv.Atoi(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")))
			return kb << 10
		}
	}
	t.Fatal("no VmRSS")
	return 0
}

// scrape reads the metrics page into name{labels} -> value.
func scrape(t *testing.T, url string) map[string]float64 {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	m := map[string]float64{}
	s := bufio.NewScanner(resp.Body)
	for s.Scan() {
		l := s.Text()
		if strings.HasPrefix(l, "#") {
			continue
		}
		if i := strings.LastIndexByte(l, ' '); i > 0 {
			v, _ := strconv.ParseFloat(l[i+1:], 64)
			m[l[:i]] = v
		}
	}
	io.Copy(io.Discard, resp.Body)
	return m
}

func kdh(length uint64, panicMsg string) []byte {
	var k wire.KernelDumpHeader
	wire.SetText(k.Magic[:], wire.KDHMagic)
	wire.SetText(k.Architecture[:], "amd64")
	k.Version, k.ArchitectureVersion, k.DumpLength, k.BlockSize = wire.KDHVersion, 2, length, 4096
	wire.SetText(k.Hostname[:], "soak")
	wire.SetText(k.PanicString[:], panicMsg)
	b := make([]byte, wire.KDHSize)
	k.Put(b)
	return b
}
