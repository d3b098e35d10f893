// Package dumptest is the receiving end for tests of netdump clients: a
// netdumpd core listening on a gVisor host stack that takes Ethernet
// frames in process, machine memory made of random and zero pages, and
// checks of the files the server wrote against what was dumped.
package dumptest

import (
	"bytes"
	"context"
	"crypto/sha256"
	"debug/elf"
	"encoding/hex"
	"errors"
	"io"
	"math/rand/v2"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tamadump/tamadump/netdump/elfcore"
	"github.com/tamadump/tamadump/netdump/server"
	"github.com/tamadump/tamadump/netdump/wire"
	"github.com/tamadump/tamadump/qemu/usernet"
)

// Addresses inside the in-process network: no host interface is touched.
var (
	ServerPrefix = netip.MustParsePrefix("127.0.9.1/24")
	ClientAddr   = netip.MustParseAddr("127.0.9.2")
	ClientMAC    = [6]byte{0x02, 0, 0, 0, 9, 2}
)

// Server is a netdumpd core on a user-space host.
type Server struct {
	Stack *usernet.Stack
	Srv   *server.Server
	Dir   string
	stop  func()
}

// NewServer starts a server on a host with ServerPrefix and the given MTU;
// it stops at the end of the test.
func NewServer(tb testing.TB, mtu int) *Server {
	return newServer(tb, usernet.Config{Addr: ServerPrefix, MTU: uint32(mtu)}, netip.IPv4Unspecified())
}

func newServer(tb testing.TB, cfg usernet.Config, listen netip.Addr) *Server {
	tb.Helper()
	st, err := usernet.New(cfg)
	if err != nil {
		tb.Fatal(err)
	}
	dir := tb.TempDir()
	srv, err := server.New(server.Config{
		Dir:        dir,
		Listen:     netip.AddrPortFrom(listen, wire.ServerPort),
		Network:    st.Network(),
		LookupAddr: func(context.Context, netip.Addr) (string, error) { return "", errors.New("numeric") },
		Log:        func(server.Level, string) {},
	})
	if err != nil {
		tb.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- srv.Run() }()
	var once sync.Once
	s := &Server{Stack: st, Srv: srv, Dir: dir}
	s.stop = func() {
		once.Do(func() {
			srv.Close()
			if err := <-done; err != nil {
				tb.Errorf("server: %v", err)
			}
		})
	}
	tb.Cleanup(func() { s.stop(); st.Close() })
	return s
}

// Stop stops the netdumpd core; the host keeps answering ARP.
func (s *Server) Stop() { s.stop() }

// Segments makes a machine's memory of size bytes: random pages, and zero
// pages with probability zero, in two segments at page-aligned addresses
// (the second mapped elsewhere, as a heap is). Every page is touched so
// that page faults do not land in a measurement.
func Segments(size int, zero float64, seed uint64) []elfcore.Segment {
	r := rand.New(rand.NewPCG(seed, 1))
	mem := make([]byte, size)
	for p := 0; p < size; p += elfcore.Page {
		if r.Float64() >= zero {
			for i := p; i < min(p+elfcore.Page, size); i++ {
				mem[i] = byte(r.Uint32())
			}
		} else {
			mem[p] = 0
		}
	}
	half := size / 2 / elfcore.Page * elfcore.Page
	return []elfcore.Segment{
		{Phys: 0x100000, Virt: 0x100000, Data: mem[:half]},
		{Phys: 0x4000000, Virt: 0xc000000000, Data: mem[half:]},
	}
}

// Body lays out an ELF core of segs with msg as the panic message.
func Body(tb testing.TB, segs []elfcore.Segment, msg string) *elfcore.Core {
	core := elfcore.New(len(segs))
	info := elfcore.Info{Arch: &elfcore.AMD64, Signal: 6, PID: 1, Panic: []byte(msg)}
	info.Regs[elfcore.RIP] = 0x401000
	if err := core.Build(segs, &info); err != nil {
		tb.Fatal(err)
	}
	return core
}

// KDH is a kernel dump header for host "testbox" panicking with msg.
func KDH(msg string) *wire.KernelDumpHeader {
	k := &wire.KernelDumpHeader{Version: wire.KDHVersion, ArchitectureVersion: 2, BlockSize: 4096, DumpTime: 1700000000}
	wire.SetText(k.Magic[:], wire.KDHMagic)
	wire.SetText(k.Architecture[:], "amd64")
	wire.SetText(k.Hostname[:], "testbox")
	k.SetVersionString("tamadump test\n")
	wire.SetText(k.PanicString[:], msg)
	return k
}

// WaitFile waits up to 10 s for the server to have written path.
func WaitFile(tb testing.TB, path string) []byte {
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

// Check compares dump n of client with core and segs: the vmcore byte for
// byte, its PT_LOADs, and the info file (complete, nothing missing, the
// panic message).
func (s *Server) Check(tb testing.TB, client netip.Addr, n int, core *elfcore.Core, segs []elfcore.Segment, msg string) {
	tb.Helper()
	suffix := client.String() + "." + strconv.Itoa(n)
	info := string(WaitFile(tb, filepath.Join(s.Dir, "info."+suffix)))
	got, err := os.ReadFile(filepath.Join(s.Dir, "vmcore."+suffix))
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
	sum := sha256.Sum256(want)
	for _, want := range []string{"Panic String: " + msg, "Dump complete", "Missing ranges: none", "Architecture: amd64", "Hostname: testbox", "Header Parity Check: Pass", "SHA256: " + hex.EncodeToString(sum[:])} {
		if !strings.Contains(info, want) {
			tb.Fatalf("info file lacks %q:\n%s", want, info)
		}
	}
}

// SyncBuffer is a console that tests read while a client writes to it.
type SyncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *SyncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *SyncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
