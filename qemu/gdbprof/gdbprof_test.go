package gdbprof

import (
	"bufio"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"
)

// fakeStub is a gdbstub as QEMU's behaves: the guest stops when a
// debugger attaches, any byte while it runs interrupts it, and every
// packet is acknowledged both ways. mem maps frame addresses to their
// saved frame pointer and return address.
type fakeStub struct {
	rip, rbp uint64
	mem      map[uint64][2]uint64

	mu      sync.Mutex
	running bool
	bad     []string // protocol errors seen
	packets []string
}

func word(v uint64) string {
	var b strings.Builder
	for i := 0; i < 8; i++ {
		fmt.Fprintf(&b, "%02x", byte(v>>(8*i)))
	}
	return b.String()
}

func (f *fakeStub) fail(format string, args ...any) {
	f.mu.Lock()
	f.bad = append(f.bad, fmt.Sprintf(format, args...))
	f.mu.Unlock()
}

func (f *fakeStub) serve(c net.Conn) {
	defer c.Close()
	r, w := bufio.NewReader(c), bufio.NewWriter(c)
	reply := func(s string) {
		var sum byte
		for i := 0; i < len(s); i++ {
			sum += s[i]
		}
		fmt.Fprintf(w, "$%s#%02x", s, sum)
		w.Flush()
		if b, err := r.ReadByte(); err != nil || b != '+' {
			f.fail("reply %q not acknowledged (%q, %v)", s, b, err)
		}
	}
	for {
		b, err := r.ReadByte()
		if err != nil {
			return
		}
		if f.running {
			f.running = false // any byte stops a running guest
			reply("T02thread:01;")
			continue
		}
		if b != '$' {
			f.fail("byte %q while stopped", b)
			continue
		}
		body, _ := r.ReadString('#')
		body = strings.TrimSuffix(body, "#")
		var cs [2]byte
		r.Read(cs[:])
		var sum byte
		for i := 0; i < len(body); i++ {
			sum += body[i]
		}
		if string(cs[:]) != fmt.Sprintf("%02x", sum) {
			f.fail("packet %q with checksum %q", body, cs)
		}
		w.WriteByte('+')
		w.Flush()
		f.mu.Lock()
		f.packets = append(f.packets, body)
		f.mu.Unlock()
		switch {
		case body == "?":
			reply("S05")
		case body == "c":
			f.running = true
		case body == "g":
			var regs strings.Builder
			for i := 0; i < 24; i++ {
				v := uint64(0)
				switch i {
				case regRBP:
					v = f.rbp
				case regRIP:
					v = f.rip
				}
				regs.WriteString(word(v))
			}
			reply(regs.String())
		case strings.HasPrefix(body, "m"):
			var addr, n uint64
			fmt.Sscanf(body, "m%x,%x", &addr, &n)
			fr, ok := f.mem[addr]
			if !ok || n != 16 {
				reply("E14")
				continue
			}
			reply(word(fr[0]) + word(fr[1]))
		case body == "D":
			reply("OK")
			return
		default:
			reply("")
		}
	}
}

func dialFake(t *testing.T, f *fakeStub) *Stub {
	t.Helper()
	path := filepath.Join(t.TempDir(), "gdb.sock")
	l, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	go func() {
		c, err := l.Accept()
		if err == nil {
			f.serve(c)
		}
	}()
	s, err := Dial("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// TestSampleWalksFrames: a sample is the PC and the return addresses up
// the frame-pointer chain, which ends where memory cannot be read; the
// guest runs again after it and after Close.
func TestSampleWalksFrames(t *testing.T) {
	f := &fakeStub{rip: 0x401000, rbp: 0xc000100000, mem: map[uint64][2]uint64{
		0xc000100000: {0xc000100040, 0x402000},
		0xc000100040: {0xc000100100, 0x403000},
		0xc000100100: {0xdead0000, 0x404000}, // its caller's frame is unmapped
	}}
	s := dialFake(t, f)
	for range 3 {
		st, err := s.Sample(16)
		if err != nil {
			t.Fatal(err)
		}
		if want := []uint64{0x401000, 0x402000, 0x403000, 0x404000}; !reflect.DeepEqual(st, want) {
			t.Fatalf("stack %#x, want %#x", st, want)
		}
	}
	st, err := s.Sample(2)
	if err != nil || len(st) != 3 {
		t.Fatalf("depth 2: %#x, %v", st, err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	time.Sleep(10 * time.Millisecond)
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.bad) > 0 {
		t.Errorf("protocol errors: %q", f.bad)
	}
	if n := len(f.packets); n == 0 || f.packets[n-1] != "D" {
		t.Errorf("packets %q: the last is not the detach", f.packets)
	}
}

// TestSampleStopsAtLoop: a frame pointer that does not go up the stack
// ends the walk instead of looping.
func TestSampleStopsAtLoop(t *testing.T) {
	f := &fakeStub{rip: 0x401000, rbp: 0xc000100000, mem: map[uint64][2]uint64{
		0xc000100000: {0xc000100000, 0x402000},
	}}
	s := dialFake(t, f)
	defer s.Close()
	st, err := s.Sample(16)
	if err != nil || len(st) != 2 {
		t.Fatalf("stack %#x, %v", st, err)
	}
}

func hotLeaf() int   { return 1 }
func hotCaller() int { return hotLeaf() + 1 }

// TestSummarize names this test binary's own PCs and counts them
// inclusively, by self and by path.
func TestSummarize(t *testing.T) {
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	sym, err := OpenSymbols(exe)
	if err != nil {
		t.Fatal(err)
	}
	leaf := uint64(reflect.ValueOf(hotLeaf).Pointer())
	caller := uint64(reflect.ValueOf(hotCaller).Pointer()) + 1 // a return address inside it
	const pkg = "github.com/tamadump/tamadump/qemu/gdbprof."
	if got := sym.Func(leaf); got != pkg+"hotLeaf" {
		t.Fatalf("Func(hotLeaf) = %q", got)
	}
	if got := sym.Func(1); got != Outside {
		t.Fatalf("Func(1) = %q", got)
	}
	p := &Profile{Stacks: [][]uint64{{leaf, caller}, {leaf, caller}, {caller + 1}, {1}}}
	s := p.Summarize(sym, 2)
	if s.Samples != 4 || s.ShareOf(pkg+"hotCaller") != 0.75 || s.ShareOf(pkg+"hotLeaf") != 0.5 || s.ShareOf(Outside) != 0.25 {
		t.Fatalf("summary %+v", s)
	}
	if s.Self[0] != (Share{pkg + "hotLeaf", 2}) || s.Paths[0] != (Share{pkg + "hotLeaf < " + pkg + "hotCaller", 2}) {
		t.Fatalf("self %+v, paths %+v", s.Self, s.Paths)
	}
	var b strings.Builder
	s.Write(&b, 5)
	if !strings.Contains(b.String(), "   50.0%  "+pkg+"hotLeaf < ") {
		t.Errorf("report:\n%s", b.String())
	}
}
