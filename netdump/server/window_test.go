package server

import (
	"fmt"
	"net"
	"net/netip"
	"os"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tamadump/tamadump/netdump/loadgen"
)

// windowServer is a server on 127.0.26.1 for sliding-window clients
// (the load generator's) sending from 127.0.26.10 onwards.
type windowServer struct {
	srv     *Server
	dir     string
	ackPort uint16
}

func newWindowServer(tb testing.TB, mod func(*Config)) *windowServer {
	tb.Helper()
	probe, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 26, 10)})
	if err != nil {
		tb.Fatal(err)
	}
	w := &windowServer{dir: tb.TempDir(), ackPort: uint16(probe.LocalAddr().(*net.UDPAddr).Port)}
	probe.Close()
	cfg := Config{
		Dir:      w.dir,
		Listen:   netip.MustParseAddrPort("127.0.26.1:0"),
		AckPort:  w.ackPort,
		NoLookup: true,
		Rate:     Unlimited,
	}
	if mod != nil {
		mod(&cfg)
	}
	if w.srv, err = New(cfg); err != nil {
		tb.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- w.srv.Run() }()
	tb.Cleanup(func() {
		w.srv.Close()
		if err := <-done; err != nil {
			tb.Error("Run:", err)
		}
	})
	return w
}

// client is session i's address.
func (w *windowServer) client(i int) netip.AddrPort {
	return netip.AddrPortFrom(netip.AddrFrom4([4]byte{127, 0, 26, byte(10 + i)}), w.ackPort)
}

// dump runs n concurrent sessions of size bytes; seeds start at seed.
// before, if set, runs in each session once its data is acknowledged.
func (w *windowServer) dump(tb testing.TB, n int, size int64, payload, window int, seed uint64, before func(i int, data netip.AddrPort)) []loadgen.Result {
	tb.Helper()
	return w.dumpWith(tb, n, size, payload, window, seed, func(s *loadgen.Session) {
		if before != nil {
			i := int(s.Seed - seed)
			s.BeforeFinish = func(d netip.AddrPort) { before(i, d) }
		}
	})
}

// dumpWith is dump with each session's configuration adjusted by mod.
func (w *windowServer) dumpWith(tb testing.TB, n int, size int64, payload, window int, seed uint64, mod func(*loadgen.Session)) []loadgen.Result {
	tb.Helper()
	res := make([]loadgen.Result, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			s := loadgen.Session{Local: w.client(i), Server: w.srv.Addr(), Size: size, Payload: payload, Window: window, Seed: seed + uint64(i), Trains: true}
			if mod != nil {
				mod(&s)
			}
			res[i], errs[i] = loadgen.Run(s)
		}()
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			tb.Fatalf("session %d: %v", i, err)
		}
	}
	return res
}

// verify checks the files of n sessions of size bytes with seeds from
// seed byte-exact (the info's SHA-256 and the file's own) and removes
// them.
func (w *windowServer) verify(tb testing.TB, n int, size int64, seed uint64) {
	tb.Helper()
	for i := range n {
		sent := loadgen.Digest(seed+uint64(i), size)
		core, info, err := loadgen.FindDump(w.dir, w.client(i).Addr())
		if err != nil {
			tb.Fatal(err)
		}
		text, _ := os.ReadFile(info)
		if !strings.Contains(string(text), "Missing ranges: none\nSHA256: "+sent+"\nDump complete\n") {
			tb.Fatalf("session %d: info:\n%s", i, text)
		}
		sum, err := loadgen.HashFile(core)
		if err != nil || sum != sent {
			tb.Fatalf("session %d: %s: SHA-256 %s (%v), sent %s", i, core, sum, err, sent)
		}
		// Keep the disk use bounded over a benchmark's runs.
		os.Remove(core)
		os.Remove(info)
	}
}

// windowIngest measures the server against sessions sliding-window
// clients, each dumping size bytes per iteration.
func windowIngest(b *testing.B, sessions int, size int64, payload, window int) {
	w := newWindowServer(b, nil)
	var ms0, ms1 runtime.MemStats
	var msgs int64
	runtime.ReadMemStats(&ms0)
	b.SetBytes(size * int64(sessions))
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		seed := uint64(i*sessions + 1)
		for _, r := range w.dump(b, sessions, size, payload, window, seed, nil) {
			msgs += r.Sent
		}
		b.StopTimer()
		w.verify(b, sessions, size, seed)
		b.StartTimer()
	}
	b.StopTimer()
	runtime.ReadMemStats(&ms1)
	b.ReportMetric(float64(ms1.Mallocs-ms0.Mallocs)/float64(msgs), "allocs/msg")
}

// BenchmarkWindowIngest: in-process server and load generator (both on
// the same CPUs); the server alone is measured by make bench, with the
// netdumpd binary.
func BenchmarkWindowIngest(b *testing.B) {
	for _, c := range []struct {
		sessions        int
		size            int64
		payload, window int
	}{
		{1, 64 << 20, 1448, 64},
		{1, 64 << 20, 8948, 256},
		{8, 16 << 20, 1448, 64},
	} {
		b.Run(fmt.Sprintf("sessions=%d/payload=%d/window=%d", c.sessions, c.payload, c.window), func(b *testing.B) {
			windowIngest(b, c.sessions, c.size, c.payload, c.window)
		})
	}
}

// TestWindowNoDrops: a sliding-window client with jumbo payloads and 256
// messages in flight loses nothing in the session socket sized for the
// server's window; the negative control, a server sized for a window of
// 4, shows the drops counted the same way (/proc/net/udp).
func TestWindowNoDrops(t *testing.T) {
	for _, tc := range []struct {
		window int
		drops  bool
	}{{DefaultWindow, false}, {4, true}} {
		w := newWindowServer(t, func(c *Config) { c.Window = tc.window })
		var drops uint64
		found := false
		res := w.dumpWith(t, 1, 16<<20, 8948, 256, 1, func(s *loadgen.Session) {
			s.RTO = 50 * time.Millisecond
			if !tc.drops {
				s.RTO = time.Second // no retransmission, whatever the load
			}
			s.BeforeFinish = func(d netip.AddrPort) { drops, found = loadgen.SocketDrops(d, w.client(0)) }
		})
		w.verify(t, 1, 16<<20, 1)
		if !found {
			t.Fatal("the session socket is not in /proc/net/udp")
		}
		t.Logf("window %d: %d drops, %d retransmissions", tc.window, drops, res[0].Retransmits)
		if got := drops > 0; got != tc.drops {
			t.Errorf("server window %d: %d drops", tc.window, drops)
		}
	}
}

// TestWindowConcurrent: 32 sliding-window sessions at once, every byte
// of every file as sent (make bench runs them at 256 MiB each).
func TestWindowConcurrent(t *testing.T) {
	w := newWindowServer(t, nil)
	const n, size = 32, 4 << 20
	w.dump(t, n, size, 1448, 64, 100, nil)
	w.verify(t, n, size, 100)
}
