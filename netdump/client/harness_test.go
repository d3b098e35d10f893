package client

import (
	"bytes"
	"context"
	"debug/elf"
	"errors"
	"io"
	"math/rand/v2"
	"net/netip"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tamadump/tamadump/debugnet/linktest"
	"github.com/tamadump/tamadump/netdump/elfcore"
	"github.com/tamadump/tamadump/netdump/server"
	"github.com/tamadump/tamadump/netdump/wire"
	"github.com/tamadump/tamadump/qemu/usernet"
)

// Addresses inside the in-process network: no host interface is touched.
var (
	serverPrefix = netip.MustParsePrefix("127.0.9.1/24")
	clientAddr   = netip.MustParseAddr("127.0.9.2")
	clientMAC    = [6]byte{0x02, 0, 0, 0, 9, 2}
)

// testbed is a client NIC joined frame by frame to a gVisor host on which
// the netdumpd core listens.
type testbed struct {
	link    *linktest.Link
	stack   *usernet.Stack
	srv     *server.Server
	dir     string
	console *syncBuffer
	stop    func()
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func newTestbed(tb testing.TB, mtu int, f linktest.Faults) *testbed {
	tb.Helper()
	st, err := usernet.New(usernet.Config{Addr: serverPrefix, MTU: uint32(mtu)})
	if err != nil {
		tb.Fatal(err)
	}
	link := linktest.New(clientMAC, mtu, 4096, f)
	link.Attach(st.Inject)
	st.Attach(link.Deliver)
	dir := tb.TempDir()
	srv, err := server.New(server.Config{
		Dir:        dir,
		Listen:     netip.AddrPortFrom(netip.IPv4Unspecified(), wire.ServerPort),
		Network:    st.Network(),
		LookupAddr: func(context.Context, netip.Addr) (string, error) { return "", errors.New("numeric") },
		Log:        func(l server.Level, m string) {},
	})
	if err != nil {
		tb.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- srv.Run() }()
	var once sync.Once
	stop := func() {
		once.Do(func() {
			srv.Close()
			if err := <-done; err != nil {
				tb.Errorf("server: %v", err)
			}
		})
	}
	tb.Cleanup(func() { stop(); st.Close(); link.Close() })
	return &testbed{link: link, stack: st, srv: srv, dir: dir, console: &syncBuffer{}, stop: stop}
}

// config is a client configuration for the testbed: short timeouts so
// failures are quick, and a yielding idle so the host stack gets the CPU.
func (b *testbed) config() Config {
	return Config{
		Client: clientAddr, Server: serverPrefix.Addr(),
		Polls: 200, PollDelay: 500 * time.Microsecond, // 100 ms per timeout
		Retries: 40, // 4 s of silence: survives the 3 s outage
		Idle:    runtime.Gosched, Console: b.console,
	}
}

// segments makes a machine's memory: random pages with zero pages in
// between (fraction zero), at page-aligned addresses.
func segments(size int, zero float64, seed uint64) []elfcore.Segment {
	r := rand.New(rand.NewPCG(seed, 1))
	mem := make([]byte, size)
	for p := 0; p < size; p += elfcore.Page {
		if r.Float64() >= zero {
			for i := p; i < min(p+elfcore.Page, size); i++ {
				mem[i] = byte(r.Uint32())
			}
		} else {
			mem[p] = 0 // fault the page in now, not while it is dumped
		}
	}
	half := size / 2 / elfcore.Page * elfcore.Page
	return []elfcore.Segment{
		{Phys: 0x100000, Virt: 0x100000, Data: mem[:half]},
		{Phys: 0x4000000, Virt: 0xc000000000, Data: mem[half:]},
	}
}

func newBody(tb testing.TB, segs []elfcore.Segment, msg string) *elfcore.Core {
	core := elfcore.New(len(segs))
	info := elfcore.Info{Signal: 6, PID: 1, Panic: []byte(msg)}
	info.Regs[elfcore.RIP] = 0x401000
	if err := core.Build(segs, &info); err != nil {
		tb.Fatal(err)
	}
	return core
}

func newKDH(msg string) *wire.KernelDumpHeader {
	k := &wire.KernelDumpHeader{Version: wire.KDHVersion, ArchitectureVersion: 2, BlockSize: 4096, DumpTime: 1700000000}
	wire.SetText(k.Magic[:], wire.KDHMagic)
	wire.SetText(k.Architecture[:], "amd64")
	wire.SetText(k.Hostname[:], "testbox")
	k.SetVersionString("tamadump test\n")
	wire.SetText(k.PanicString[:], msg)
	return k
}

// waitFile waits for the server to finish writing name.
func waitFile(tb testing.TB, path string) []byte {
	tb.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		b, err := os.ReadFile(path)
		if err == nil && len(b) > 0 {
			return b
		}
		if time.Now().After(deadline) {
			tb.Fatalf("%s never appeared: %v", path, err)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// check compares the server's files with what was dumped.
func (b *testbed) check(tb testing.TB, n int, core *elfcore.Core, segs []elfcore.Segment, msg string) {
	tb.Helper()
	suffix := clientAddr.String() + "." + string(rune('0'+n))
	info := string(waitFile(tb, filepath.Join(b.dir, "info."+suffix)))
	got, err := os.ReadFile(filepath.Join(b.dir, "vmcore."+suffix))
	if err != nil {
		tb.Fatal(err)
	}
	want := make([]byte, core.Size())
	if _, err := core.ReadAt(want, 0); err != nil {
		tb.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		diff := 0
		for diff < min(len(got), len(want)) && got[diff] == want[diff] {
			diff++
		}
		tb.Fatalf("vmcore: %d bytes, want %d; first difference at %d\ninfo:\n%s", len(got), len(want), diff, info)
	}
	f, err := elf.NewFile(bytes.NewReader(got))
	if err != nil {
		tb.Fatal(err)
	}
	i := 0
	for _, p := range f.Progs {
		if p.Type != elf.PT_LOAD {
			continue
		}
		data, _ := io.ReadAll(p.Open())
		if p.Paddr != segs[i].Phys || p.Vaddr != segs[i].Virt || !bytes.Equal(data, segs[i].Data) {
			tb.Fatalf("PT_LOAD %d differs from its segment", i)
		}
		i++
	}
	for _, want := range []string{"Panic String: " + msg, "Dump complete", "Missing ranges: none", "Architecture: amd64", "Hostname: testbox", "Header Parity Check: Pass"} {
		if !strings.Contains(info, want) {
			tb.Fatalf("info file lacks %q:\n%s", want, info)
		}
	}
}
