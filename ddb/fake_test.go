package ddb

import (
	"errors"
	"io"
	"net/netip"
	"strings"
	"testing"
)

// fakeMachine records what the shell asks of it. Everything Debug reaches
// is allocation-free, so the allocation test measures the shell alone.
type fakeMachine struct {
	nics         []string
	cfg          Config
	on           bool
	configureErr error
	dumpErr      error
	console      io.Writer // where Dump and Backtrace write
	configures   int
	dumps        int
	dumped       Config
	resets       int
	panics       []string
}

func (m *fakeMachine) NICs() []string         { return m.nics }
func (m *fakeMachine) Config() (Config, bool) { return m.cfg, m.on }

func (m *fakeMachine) Configure(c Config) error {
	m.configures++
	if m.configureErr != nil {
		return m.configureErr
	}
	m.cfg, m.on = c, c != Config{}
	return nil
}

func (m *fakeMachine) Panic(msg string) { m.panics = append(m.panics, msg) }

func (m *fakeMachine) Dump(c Config) error {
	m.dumps++
	m.dumped = c
	if m.dumpErr != nil {
		return m.dumpErr
	}
	if m.console != nil {
		m.console.Write(finished)
	}
	return nil
}

func (m *fakeMachine) Backtrace(w io.Writer) { w.Write(stack) }
func (m *fakeMachine) Reset()                { m.resets++ }

var (
	finished   = []byte("netdump finished.\r\n") // the machine ends its lines itself
	stack      = []byte("goroutine 1 [running]:\nmain.main()\n\t/src/main.go:7 +0x1d\n")
	errNoAck   = errors.New("failed to contact netdump server")
	errNoNIC   = errors.New("interface is down")
	twoNICs    = []string{"vtnet0", "em0"}
	oneNIC     = []string{"vtnet0"}
	configured = Config{
		NIC:     "em0",
		Client:  netip.MustParseAddr("10.0.2.15"),
		Server:  netip.MustParseAddr("10.0.2.2"),
		Gateway: netip.MustParseAddr("10.0.2.1"),
		Path:    "crash",
	}
)

// script replays the same console input on every Reset, without allocating.
type script struct {
	data  []byte
	pos   int
	chunk int // bytes per Read; 0: as many as fit
}

func (r *script) Read(b []byte) (int, error) {
	if r.pos == len(r.data) {
		return 0, io.EOF
	}
	if r.chunk > 0 && len(b) > r.chunk {
		b = b[:r.chunk]
	}
	n := copy(b, r.data[r.pos:])
	r.pos += n
	return n, nil
}

func (r *script) reset() { r.pos = 0 }

// sink is a console output that keeps the first 64 KiB written in a fixed
// buffer and drops the rest, so writing to it never allocates.
type sink struct {
	buf [64 << 10]byte
	n   int
}

func (w *sink) Write(b []byte) (int, error) {
	w.n += copy(w.buf[min(w.n, len(w.buf)):], b)
	return len(b), nil
}

func (w *sink) String() string { return string(w.buf[:w.n]) }

// lf checks that every line of console output ends with CR LF, as a dumb
// terminal needs, and returns the output with plain LF line ends so that
// expectations stay readable.
func lf(t *testing.T, s string) string {
	t.Helper()
	if strings.Count(s, "\n") != strings.Count(s, "\r\n") {
		t.Errorf("bare LF in console output %q", s)
	}
	return strings.ReplaceAll(s, "\r\n", "\n")
}
