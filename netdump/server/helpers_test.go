package server

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tamadump/tamadump/netdump/server/servertest"
	"github.com/tamadump/tamadump/netdump/wire"
)

// logBuf collects log lines.
type logBuf struct {
	mu    sync.Mutex
	lines []string
}

func (l *logBuf) log(level Level, msg string) {
	l.mu.Lock()
	l.lines = append(l.lines, level.String()+": "+msg)
	l.mu.Unlock()
}

func (l *logBuf) count(substr string) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := 0
	for _, s := range l.lines {
		if strings.Contains(s, substr) {
			n++
		}
	}
	return n
}

func (l *logBuf) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return strings.Join(l.lines, "\n")
}

// waitLog waits until substr has been logged n times.
func (l *logBuf) waitLog(t testing.TB, substr string, n int) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(5 * time.Millisecond) {
		if l.count(substr) >= n {
			return
		}
	}
	t.Fatalf("%q not logged %d times; log:\n%s", substr, n, l)
}

// harness is a server on loopback plus the ACK port its clients bind.
type harness struct {
	t       testing.TB
	srv     *Server
	dir     string
	log     *logBuf
	ackPort uint16
	runErr  chan error
	closed  sync.Once
}

func numeric(context.Context, netip.Addr) (string, error) { return "", errors.New("no PTR") }

// newHarness starts a server; mod may adjust the configuration.
func newHarness(t testing.TB, mod func(*Config)) *harness {
	t.Helper()
	// A port free on 127.0.21.1 serves as every client's ACK port; each
	// client binds it on its own 127.0.21.x.
	probe, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 21, 1)})
	if err != nil {
		t.Fatal(err)
	}
	ackPort := uint16(probe.LocalAddr().(*net.UDPAddr).Port)
	probe.Close()
	h := &harness{t: t, dir: t.TempDir(), log: &logBuf{}, ackPort: ackPort, runErr: make(chan error, 1)}
	cfg := Config{
		Dir:        h.dir,
		Listen:     netip.MustParseAddrPort("127.0.21.1:0"),
		AckPort:    ackPort,
		LookupAddr: numeric,
		Log:        h.log.log,
	}
	if mod != nil {
		mod(&cfg)
	}
	h.srv, err = New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	go func() { h.runErr <- h.srv.Run() }()
	t.Cleanup(h.close)
	return h
}

func (h *harness) close() { h.closed.Do(h.shutdown) }

func (h *harness) shutdown() {
	h.srv.Close()
	select {
	case err := <-h.runErr:
		if err != nil {
			h.t.Errorf("Run: %v", err)
		}
	case <-time.After(10 * time.Second):
		h.t.Errorf("Run did not return after Close")
	}
}

// counter is the value of a metric of the server (a counter or gauge)
// with the label value given (or none).
func (h *harness) counter(t testing.TB, name, label string) float64 {
	t.Helper()
	fams, err := h.srv.Metrics().Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range fams {
		if f.GetName() != name {
			continue
		}
		for _, m := range f.GetMetric() {
			if label != "" && (len(m.GetLabel()) == 0 || m.GetLabel()[0].GetValue() != label) {
				continue
			}
			if m.GetCounter() != nil {
				return m.GetCounter().GetValue()
			}
			return m.GetGauge().GetValue()
		}
	}
	t.Fatalf("no metric %s{%s}", name, label)
	return 0
}

// openFDs counts this process's open file descriptors.
func openFDs(t testing.TB) int {
	t.Helper()
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	return len(ents)
}

// client binds 127.0.21.<host>:ackPort.
func (h *harness) client(host byte) *servertest.Client {
	return h.clientTo(host, h.srv.Addr())
}

// clientTo is client sending its HERALD to server.
func (h *harness) clientTo(host byte, server netip.AddrPort) *servertest.Client {
	h.t.Helper()
	c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 21, host), Port: int(h.ackPort)})
	if err != nil {
		h.t.Fatal(err)
	}
	c.SetReadBuffer(1 << 20)
	h.t.Cleanup(func() { c.Close() })
	return servertest.New(servertest.UDP(c), server)
}

func (h *harness) read(name string) []byte {
	h.t.Helper()
	b, err := os.ReadFile(filepath.Join(h.dir, name))
	if err != nil {
		h.t.Fatal(err)
	}
	return b
}

// dump is a client's content plan.
type dump struct {
	core []byte // the expected vmcore (zero where a run is declared)
	kdh  wire.KernelDumpHeader
}

func newKDH(length uint64, comp uint8, keySize uint32) wire.KernelDumpHeader {
	var k wire.KernelDumpHeader
	wire.SetText(k.Magic[:], wire.KDHMagic)
	wire.SetText(k.Architecture[:], "amd64")
	k.Version = wire.KDHVersion
	k.ArchitectureVersion = 2
	k.DumpLength = length
	k.DumpTime = 1700000000
	k.DumpKeySize = keySize
	k.BlockSize = 4096
	wire.SetText(k.Hostname[:], "guest.example.org")
	k.SetVersionString("FreeBSD 14.0-RELEASE #0: Fri Nov 10 05:57:23 UTC 2023\n    root@build:/usr/obj/GENERIC\n")
	wire.SetText(k.PanicString[:], "page fault")
	k.Compression = comp
	k.DumpExtent = length
	return k
}

func kdhBytes(k *wire.KernelDumpHeader) []byte {
	b := make([]byte, wire.KDHSize)
	k.Put(b)
	return b
}

func pattern(seed, n int) []byte { return servertest.Pattern(seed, n) }

// sendAll sends core in order, chunk bytes per message, in batches.
func sendAll(c *servertest.Client, core []byte, chunk int) error {
	var batch []servertest.Msg
	for off := 0; off < len(core); off += chunk {
		end := min(off+chunk, len(core))
		batch = append(batch, servertest.Msg{Type: wire.VMCore, Offset: uint64(off), Payload: core[off:end]})
		if len(batch) == 46 {
			if err := c.Send(batch...); err != nil {
				return err
			}
			batch = batch[:0]
		}
	}
	if len(batch) > 0 {
		return c.Send(batch...)
	}
	return nil
}
