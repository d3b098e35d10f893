package board

import (
	"errors"
	"io"
	"net/netip"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/tamadump/tamadump/debugnet/linktest"
	"github.com/tamadump/tamadump/netdump/dumptest"
	"github.com/tamadump/tamadump/netdump/elfcore"
)

// machine is a board whose memory and console are test data.
type machine struct {
	segs    []elfcore.Segment
	console string
	out     io.Writer
}

func (m *machine) Name() string            { return "test" }
func (m *machine) Arch() *elfcore.Arch     { return &elfcore.AMD64 }
func (m *machine) Console() io.Writer      { return m.out }
func (m *machine) ConsoleInput() io.Reader { return strings.NewReader("") }
func (m *machine) Ethernet(string) (Ethernet, error) {
	return Ethernet{}, errors.New("test machine: no NIC")
}
func (m *machine) StartNetwork(netip.Prefix, netip.Addr) error { return nil }
func (m *machine) Settings() []string                          { return nil }
func (m *machine) BootTime() time.Duration                     { return 0 }
func (m *machine) OnCrash(func(*Crash))                        {}
func (m *machine) Halt(int)                                    {}
func (m *machine) Reboot()                                     {}
func (m *machine) MemoryMB() uint64                            { return 4 }
func (m *machine) MsgBuf(dst []byte) int {
	s := m.console
	if len(s) > len(dst) {
		s = s[len(s)-len(dst):]
	}
	return copy(dst, s)
}
func (m *machine) Memory(dst []elfcore.Segment) ([]elfcore.Segment, error) {
	return append(dst, m.segs...), nil
}

// resettable is a test link as a NIC with Reset.
type resettable struct {
	*linktest.Link
	resets int
}

func (r *resettable) Reset() error { r.resets++; return nil }

const console = "booting\npanic: runtime error: index out of range [5] with length 3\n\ngoroutine 1 [running]:\nmain.main()\n\t/src/main.go:12 +0x1d\nexit status 2\n"

func TestDumpAfterCrash(t *testing.T) {
	s := dumptest.NewServer(t, 1500)
	link := linktest.New(dumptest.ClientMAC, 1500, 4096, linktest.Faults{})
	link.Attach(s.Stack.Inject)
	s.Stack.Attach(link.Deliver)
	nic := &resettable{Link: link}
	var out dumptest.SyncBuffer
	m := &machine{segs: dumptest.Segments(256<<10, 0.3, 4), console: console, out: &out}
	d := NewDumper(m, nic, "testbox", "tamadump test\n")
	if err := d.Dump(); err != errNotConfigured {
		t.Fatalf("dump before configuration: %v", err)
	}
	cfg, err := ParseConfig("127.0.9.1", "127.0.9.2", "", "")
	if err != nil {
		t.Fatal(err)
	}
	cfg.Idle = runtime.Gosched
	if err := d.Configure(cfg); err != nil {
		t.Fatal(err)
	}
	msg := "runtime error: index out of range [5] with length 3"
	c := &Crash{Reason: Panic, Code: 2, Msg: []byte(msg)}
	c.Regs[elfcore.RIP] = 0x401000
	d.Crashed(c)
	if string(d.Panic()) != msg {
		t.Fatalf("panic message %q", d.Panic())
	}
	if err := d.Dump(); err != nil {
		t.Fatalf("dump: %v\n%s", err, out.String())
	}
	if nic.resets != 1 {
		t.Fatalf("NIC reset %d times", nic.resets)
	}
	core := elfcore.New(len(m.segs))
	info := elfcore.Info{Arch: &elfcore.AMD64, Regs: c.Regs, Signal: 6, PID: 1, Panic: []byte(msg), BuildID: selfID(t)}
	if err := core.Build(m.segs, &info); err != nil {
		t.Fatal(err)
	}
	s.Check(t, dumptest.ClientAddr, 0, core, m.segs, msg)

	// After the crash DDB may point the dump elsewhere: only addresses.
	cfg.Path = "elsewhere"
	if err := d.Configure(cfg); err != nil {
		t.Fatalf("retarget after the crash: %v", err)
	}
	cfg.Window = 7
	if err := d.Configure(cfg); err == nil {
		t.Fatal("changing the window after the crash was accepted")
	}
	var bt strings.Builder
	d.Backtrace(&bt)
	if !strings.HasPrefix(bt.String(), "goroutine 1 [running]:\nmain.main()") {
		t.Fatalf("backtrace %q", bt.String())
	}
}

// TestNoAllocation counts heap allocations from the crash to the end of
// the dump, against a responder that allocates nothing either.
func TestNoAllocation(t *testing.T) {
	link, _ := dumptest.NewResponder(1500)
	nic := &resettable{Link: link}
	m := &machine{segs: dumptest.Segments(1<<20, 0.5, 4), console: console, out: io.Discard}
	d := NewDumper(m, nic, "testbox", "v\n")
	cfg, _ := ParseConfig("127.0.9.1", "127.0.9.2", "", "")
	if err := d.Configure(cfg); err != nil {
		t.Fatal(err)
	}
	crash := &Crash{Reason: Panic, Msg: []byte("boom")}
	d.Crashed(crash)
	if err := d.Dump(); err != nil { // first use
		t.Fatal(err)
	}
	n := dumptest.HeapAllocs(func() {
		d.Crashed(crash)
		cfg.Path = "again"
		if err := d.Configure(cfg); err != nil {
			t.Fatal(err)
		}
		if err := d.Dump(); err != nil {
			t.Fatal(err)
		}
	})
	if n != 0 {
		t.Fatalf("%d allocations from the crash to FINISHED", n)
	}
}

func TestPanicMessage(t *testing.T) {
	for in, want := range map[string]string{
		"panic: boom\n\ngoroutine 1 [running]:\n":           "boom",
		"x\npanic: first [recovered]\npanic: second\r\n":    "second",
		"fatal error: concurrent map writes\n\ngoroutine 5": "concurrent map writes",
		"panic: runtime error: invalid memory address or nil pointer dereference\n[signal SIGSEGV: segmentation violation code=0x1 addr=0x0 pc=0x4a]": "runtime error: invalid memory address or nil pointer dereference",
		"log: not a panic: really\n":                       "",
		"boot\nSIGILL: illegal instruction\nPC=0x4a m=0\n": "SIGILL: illegal instruction",
		"SIGNAL lost\n":                                    "",
		"":                                                 "",
	} {
		if got := string(PanicMessage([]byte(in))); got != want {
			t.Errorf("PanicMessage(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestParseConfig(t *testing.T) {
	if _, err := ParseConfig("10.0.0.1", "10.0.0.2", "10.0.0.254", "crashes"); err != nil {
		t.Fatal(err)
	}
	for _, bad := range [][4]string{{"", "10.0.0.2", "", ""}, {"10.0.0.1", "nope", "", ""}, {"10.0.0.1", "10.0.0.2", "x", ""}, {"::1", "10.0.0.2", "", ""}} {
		if _, err := ParseConfig(bad[0], bad[1], bad[2], bad[3]); err == nil {
			t.Errorf("ParseConfig%q accepted", bad)
		}
	}
}

// partial is a machine whose memory map does not fit.
type partial struct{ machine }

func (p *partial) Memory(dst []elfcore.Segment) ([]elfcore.Segment, error) {
	return append(dst, p.segs[0]), ErrPartialMemory
}

func TestPartialMemoryStillDumps(t *testing.T) {
	link, _ := dumptest.NewResponder(1500)
	var out dumptest.SyncBuffer
	m := &partial{machine{segs: dumptest.Segments(64<<10, 0, 4), console: console, out: &out}}
	d := NewDumper(m, &resettable{Link: link}, "testbox", "v\n")
	cfg, _ := ParseConfig("127.0.9.1", "127.0.9.2", "", "")
	if err := d.Configure(cfg); err != nil {
		t.Fatal(err)
	}
	d.Crashed(&Crash{Reason: Panic})
	if err := d.Dump(); err != nil {
		t.Fatalf("dump with a partial memory map: %v", err)
	}
	if !strings.Contains(out.String(), "the dump holds its first part") {
		t.Fatalf("console:\n%s", out.String())
	}
}
