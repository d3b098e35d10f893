package server

import (
	"bytes"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/net/ipv4"

	"github.com/tamadump/tamadump/netdump/server/servertest"
	"github.com/tamadump/tamadump/netdump/transport"
	"github.com/tamadump/tamadump/netdump/wire"
)

// TestConcurrent: 32 clients dump different content at the same time;
// every file is byte-exact.
func TestConcurrent(t *testing.T) {
	h := newHarness(t, nil)
	const n = 32
	cores := make([][]byte, n)
	clients := make([]*servertest.Client, n)
	for i := range n {
		cores[i] = pattern(100+i, 512<<10+i*1000)
		// Holes in some, to exercise the sparse path under load.
		if i%4 == 0 {
			clear(cores[i][64<<10 : 128<<10])
		}
		clients[i] = h.client(byte(10 + i))
	}
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c, core := clients[i], cores[i]
			if err := c.Herald(""); err != nil {
				errs <- fmt.Errorf("client %d HERALD: %v", i, err)
				return
			}
			for off := 0; off < len(core); {
				var batch []servertest.Msg
				for len(batch) < 46 && off < len(core) {
					if i%4 == 0 && off == 64<<10 {
						batch = append(batch, servertest.Msg{Type: wire.VMCore, Offset: uint64(off), Aux2: 64 << 10})
						off += 64 << 10
						continue
					}
					end := min(off+1448, len(core))
					batch = append(batch, servertest.Msg{Type: wire.VMCore, Offset: uint64(off), Payload: core[off:end]})
					off = end
				}
				if err := c.Send(batch...); err != nil {
					errs <- fmt.Errorf("client %d VMCORE: %v", i, err)
					return
				}
			}
			k := newKDH(uint64(len(core)), wire.CompressNone, 0)
			if err := c.Send(servertest.Msg{Type: wire.KDH, Payload: kdhBytes(&k)}); err != nil {
				errs <- fmt.Errorf("client %d KDH: %v", i, err)
				return
			}
			if err := c.Finish(); err != nil {
				errs <- fmt.Errorf("client %d FINISHED: %v", i, err)
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	for i := range n {
		ip := fmt.Sprintf("127.0.21.%d", 10+i)
		if got := h.read("vmcore." + ip + ".0"); !bytes.Equal(got, cores[i]) {
			t.Errorf("%s: %d bytes, differs from the %d sent", ip, len(got), len(cores[i]))
		}
		if info := string(h.read("info." + ip + ".0")); !strings.Contains(info, "Missing ranges: none\nSHA256: "+sha(cores[i])+"\nDump complete\n") {
			t.Errorf("%s info:\n%s", ip, info)
		}
	}
}

// fullDisk fails vmcore writes beyond limit bytes with ENOSPC, writing
// what fits first, like a filling disk.
type fullDisk struct {
	coreFile
	limit int64
}

func (f fullDisk) WriteAt(p []byte, off int64) (int, error) {
	if off+int64(len(p)) <= f.limit {
		return f.coreFile.WriteAt(p, off)
	}
	n := 0
	if off < f.limit {
		n, _ = f.coreFile.WriteAt(p[:f.limit-off], off)
	}
	return n, &os.PathError{Op: "write", Path: "vmcore", Err: syscall.ENOSPC}
}

// TestDiskFull: a dump that hits a write error ends with netdumpd's info
// line giving the real file offset and the "error" handler; a dump that
// fits, running at the same time, completes.
func TestDiskFull(t *testing.T) {
	script, out := handlerScript(t)
	h := newHarness(t, func(c *Config) {
		c.Handler = script
		c.wrapCore = func(f coreFile) coreFile { return fullDisk{f, 200 << 10} }
	})
	big, small := h.client(1), h.client(2)
	big.Retries, big.RTO = 1, 100*time.Millisecond
	bigCore, smallCore := pattern(1, 1<<20), pattern(2, 150<<10)
	var wg sync.WaitGroup
	var bigErr, smallErr error
	wg.Add(2)
	go func() {
		defer wg.Done()
		if bigErr = big.Herald(""); bigErr == nil {
			bigErr = sendAll(big, bigCore, 1448)
		}
	}()
	go func() {
		defer wg.Done()
		if smallErr = small.Herald(""); smallErr == nil {
			if smallErr = sendAll(small, smallCore, 1448); smallErr == nil {
				smallErr = small.Finish()
			}
		}
	}()
	wg.Wait()
	if bigErr == nil {
		t.Error("the full-disk dump was acknowledged to the end")
	}
	if smallErr != nil {
		t.Fatal("small dump:", smallErr)
	}
	if got := h.read("vmcore.127.0.21.2.0"); !bytes.Equal(got, smallCore) {
		t.Error("small dump differs")
	}
	info := string(h.read("info.127.0.21.1.0"))
	if !strings.HasSuffix(info, "Dump unsuccessful: write error @ offset 00032000: No space left on device\n") {
		t.Errorf("info:\n%s", info)
	}
	if h.log.count("pwrite (for client 127.0.21.1 [127.0.21.1]): No space left on device") != 1 {
		t.Errorf("log:\n%s", h.log)
	}
	h.log.waitLog(t, "exited with status 0", 2)
	if a, _ := handlerRuns(t, out, "error"); len(a) != 1 || a[0][3] != "127.0.21.1" {
		t.Errorf("error handler runs: %v", a)
	}
	if exists(h.dir, "vmcore.127.0.21.1.last") {
		t.Error("failed dump linked as last")
	}
}

// TestTimeout: a silent client is dropped after the idle timeout; data
// buffered so far is kept, the gap is reported, the handler runs.
func TestTimeout(t *testing.T) {
	script, out := handlerScript(t)
	h := newHarness(t, func(c *Config) {
		c.Handler = script
		c.Timeout = 300 * time.Millisecond
		c.TPass = 50 * time.Millisecond
	})
	c := h.client(1)
	if err := c.Herald(""); err != nil {
		t.Fatal(err)
	}
	data := pattern(4, 5000)
	if err := c.Send(servertest.Msg{Type: wire.VMCore, Payload: data}); err != nil {
		t.Fatal(err)
	}
	k := newKDH(3*page, wire.CompressNone, 0)
	if err := c.Send(servertest.Msg{Type: wire.KDH, Payload: kdhBytes(&k)}); err != nil {
		t.Fatal(err)
	}
	h.log.waitLog(t, "Client 127.0.21.1 timed out", 1)
	h.log.waitLog(t, "exited with status 0", 1)
	if got := h.read("vmcore.127.0.21.1.0"); !bytes.Equal(got, data) {
		t.Errorf("vmcore: %d bytes", len(got))
	}
	info := string(h.read("info.127.0.21.1.0"))
	if !strings.HasSuffix(info, "Missing ranges: 0x1388-0x2fff\nDump incomplete: client timed out\n") {
		t.Errorf("info:\n%s", info)
	}
	if a, _ := handlerRuns(t, out, "timeout"); len(a) != 1 {
		t.Errorf("timeout handler runs: %v", a)
	}
	if exists(h.dir, "info.127.0.21.1.last") {
		t.Error("timed-out dump linked as last")
	}
}

// TestClose: Close ends open dumps as timed out and waits for their
// handlers.
func TestClose(t *testing.T) {
	script, out := handlerScript(t)
	h := newHarness(t, func(c *Config) { c.Handler = script })
	for i := range 3 {
		c := h.client(byte(1 + i))
		if err := c.Herald(""); err != nil {
			t.Fatal(err)
		}
		if i > 0 {
			if err := c.Send(servertest.Msg{Type: wire.VMCore, Payload: []byte("x")}); err != nil {
				t.Fatal(err)
			}
		}
	}
	h.close()
	// The session without data had no files and runs no handler.
	if a, _ := handlerRuns(t, out, "timeout"); len(a) != 2 {
		t.Errorf("timeout handler runs after Close: %d", len(a))
	}
	if h.log.count("Shutting down...") != 1 || h.log.count("dump interrupted by the shutdown") != 2 {
		t.Errorf("log:\n%s", h.log)
	}
	for _, ip := range []string{"127.0.21.2", "127.0.21.3"} {
		if info := string(h.read("info." + ip + ".0")); !strings.HasSuffix(info, statusStopped+"\n") {
			t.Errorf("%s info:\n%s", ip, info)
		}
	}
}

// ingester is one client sending batches of batch payloads of size
// bytes and waiting for the ACKs, like debugnet: fresh, in-order data
// (written and hashed as it arrives, as in a real dump); the file wraps
// at 1 GiB so that long runs stay bounded.
type ingester struct {
	c    *servertest.Client
	msgs []servertest.Msg
	data []byte
	size int
	span uint64
	wrap uint64
	i    uint64
}

func newIngester(tb testing.TB, h *harness, size, batch int) *ingester {
	conn, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 21, 1), Port: int(h.ackPort)})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { conn.Close() })
	conn.SetReadBuffer(1 << 20)
	g := &ingester{c: servertest.New(servertest.UDP(conn), h.srv.Addr()), msgs: make([]servertest.Msg, batch),
		data: pattern(1, size), size: size, span: uint64(size * batch)}
	g.wrap = (1 << 30) / g.span
	if err := g.c.Herald(""); err != nil {
		tb.Fatal(err)
	}
	return g
}

// send sends the next batch.
func (g *ingester) send(tb testing.TB) {
	base := g.i % g.wrap * g.span
	g.i++
	for j := range g.msgs {
		g.msgs[j] = servertest.Msg{Type: wire.VMCore, Offset: base + uint64(j*g.size), Payload: g.data}
	}
	if err := g.c.Send(g.msgs...); err != nil {
		tb.Fatal(err)
	}
}

// mallocs is the process's count of heap allocations so far.
func mallocs() uint64 {
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.Mallocs
}

// ingest measures the server's throughput and its allocations per
// packet (the client's included: it makes none per packet).
func ingest(b *testing.B, size, batch int) {
	g := newIngester(b, newHarness(b, nil), size, batch)
	m0 := mallocs()
	b.SetBytes(int64(g.span))
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		g.send(b)
	}
	b.StopTimer()
	b.ReportMetric(float64(mallocs()-m0)/float64(b.N*batch), "allocs/pkt")
}

// TestIngestAllocs: once a dump runs, receiving in-order data allocates
// nothing per message: not the batched read, the ACK train, the
// write-back nor the hasher's jobs. The negative control reads through
// a socket that allocates a source address per datagram, as x/net's
// ReadBatch does, and those allocations are counted.
func TestIngestAllocs(t *testing.T) {
	if raceEnabled {
		t.Skip("SKIP: the race detector allocates")
	}
	for _, tc := range []struct {
		name     string
		network  Network
		min, max float64
	}{{"os", OSNetwork{}, 0, 0.01}, {"allocating-read", allocNetwork, 0.99, 1.1}} {
		g := newIngester(t, newHarness(t, func(c *Config) { c.Network = tc.network }), 1448, 46)
		for range 20 {
			g.send(t) // the dump's files, buffers and hasher
		}
		const batches = 200
		m0 := mallocs()
		for range batches {
			g.send(t)
		}
		got := float64(mallocs()-m0) / (batches * 46)
		t.Logf("%s: %.4f allocations per message", tc.name, got)
		if got < tc.min || got > tc.max {
			t.Errorf("%s: %.4f allocations per message, want %v to %v", tc.name, got, tc.min, tc.max)
		}
	}
}

// wrapNetwork's client sockets are the OS's, wrapped.
type wrapNetwork struct {
	OSNetwork
	wrap func(osConn) ClientConn
}

// osConn is what OSNetwork's client sockets are.
type osConn interface {
	transport.BatchConn
	transport.KernelBuffer
}

func (n wrapNetwork) DialClient(local netip.Addr, remote netip.AddrPort) (ClientConn, error) {
	c, err := n.OSNetwork.DialClient(local, remote)
	if err != nil {
		return nil, err
	}
	return n.wrap(c.(osConn)), nil
}

// allocNetwork's client sockets allocate a source address for every
// datagram they read.
var allocNetwork = wrapNetwork{wrap: func(c osConn) ClientConn { return allocConn{c} }}

type allocConn struct{ osConn }

func (c allocConn) ReadBatch(ms []ipv4.Message) (int, error) {
	n, err := c.osConn.ReadBatch(ms)
	for i := range n {
		ms[i].Addr = &net.UDPAddr{Port: i}
	}
	return n, err
}

// BenchmarkIngest: 46 packets of 1448 bytes per batch (MTU 1500).
func BenchmarkIngest(b *testing.B) { ingest(b, 1448, 46) }

// BenchmarkIngestJumbo: 64 KiB-class datagrams, beyond netdumpd's limit,
// two per batch: more would overflow the 128 KiB SO_RCVBUF netdumpd asks
// for (doubled by Linux) and measure retransmission timeouts instead.
func BenchmarkIngestJumbo(b *testing.B) { ingest(b, wire.MaxPayload, 2) }

// TestSparse: a declared zero run is not written: the file keeps a hole
// there, yet has its full length and hashes as zeros, within the digest's
// zero budget (zeroRatio per data byte); beyond it the SHA256 is "not
// computed" and costs nothing.
func TestSparse(t *testing.T) {
	h := newHarness(t, nil)
	c := h.client(1)
	for i, tc := range []struct {
		data, run int
		hashed    bool
	}{{64 * page, 16 << 20, true}, {page, 16 << 20, false}} {
		if err := c.Herald(""); err != nil {
			t.Fatal(err)
		}
		data := pattern(8, tc.data)
		if err := sendAll(c, data, 1448); err != nil {
			t.Fatal(err)
		}
		if err := c.Send(servertest.Msg{Type: wire.VMCore, Offset: uint64(tc.data), Aux2: uint32(tc.run)}); err != nil {
			t.Fatal(err)
		}
		if err := c.Finish(); err != nil {
			t.Fatal(err)
		}
		name := fmt.Sprintf("vmcore.127.0.21.1.%d", i)
		st, err := os.Stat(filepath.Join(h.dir, name))
		if err != nil {
			t.Fatal(err)
		}
		if st.Size() != int64(tc.data+tc.run) {
			t.Errorf("size %d, want %d", st.Size(), tc.data+tc.run)
		}
		if used := st.Sys().(*syscall.Stat_t).Blocks * 512; used > 1<<20 {
			t.Errorf("%d bytes allocated: the zero run was written", used)
		}
		want := "SHA256: not computed (declared zeros and holes exceed 64 times the data received)\n"
		if tc.hashed {
			want = "SHA256: " + sha(append(data, make([]byte, tc.run)...)) + "\n"
		}
		if info := string(h.read(fmt.Sprintf("info.127.0.21.1.%d", i))); !strings.Contains(info, want) {
			t.Errorf("info:\n%s", info)
		}
	}
}

// noGRONetwork's client sockets read one datagram at a time, as where
// the kernel has no UDP_GRO.
var noGRONetwork = wrapNetwork{wrap: func(c osConn) ClientConn { return noGROConn{c} }}

type noGROConn struct{ osConn }

func (noGROConn) GRO() bool { return false }
