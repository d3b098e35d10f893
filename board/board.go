package board

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"sync"
	"time"

	"github.com/tamadump/tamadump/board/goruntime"
	"github.com/tamadump/tamadump/debugnet"
	"github.com/tamadump/tamadump/netdump/buildid"
	"github.com/tamadump/tamadump/netdump/client"
	"github.com/tamadump/tamadump/netdump/elfcore"
	"github.com/tamadump/tamadump/netdump/wire"
)

// Reason says how the machine crashed.
type Reason uint8

const (
	Panic  Reason = iota + 1 // the Go runtime ended the program (unrecovered panic, fatal error)
	Fault                    // a CPU exception nobody handled
	Signal                   // a fatal signal (stock-Go board)
)

func (r Reason) String() string {
	switch r {
	case Panic:
		return "panic"
	case Fault:
		return "CPU exception"
	case Signal:
		return "fatal signal"
	}
	return "crash"
}

// Crash is what a board captured at the failure.
type Crash struct {
	Reason Reason
	Code   uint64 // exit status, vector or signal
	Addr   uint64 // faulting address, when known
	Regs   elfcore.Regs
	// Msg is the panic message: the runtime's, which the board finds in
	// its console output (PanicMessage), or the board's own description
	// of a CPU exception. It is the board's memory, valid until the
	// machine stops.
	Msg []byte
}

// Machine is a board: the machine the image runs on. After a crash, the
// methods the panic path calls (Console, MsgBuf, Memory, MemoryMB, Arch,
// Halt, Reboot) neither allocate nor take locks.
type Machine interface {
	// Name is the board's name ("tamago", "stockgo").
	Name() string
	// Arch is the machine for the core and the kernel dump header.
	Arch() *elfcore.Arch
	// Console is the serial console; ConsoleInput reads from it.
	Console() io.Writer
	ConsoleInput() io.Reader
	// MsgBuf copies the newest console output into dst, oldest first.
	MsgBuf(dst []byte) int
	// Ethernet starts the driver of the NIC the dump goes through (want:
	// "" for the first found, or a name or kind the board knows), on
	// memory reserved for it now.
	Ethernet(want string) (Ethernet, error)
	// StartNetwork runs the normal-operation network on that NIC: ARP,
	// ping and UDP echo on port 7.
	StartNetwork(addr netip.Prefix, gw netip.Addr) error
	// Memory appends the memory to dump to dst[:0] without allocating
	// (ErrPartialMemory: more than fits).
	Memory(dst []elfcore.Segment) ([]elfcore.Segment, error)
	// MemoryMB is the machine's RAM, for the progress line.
	MemoryMB() uint64
	// Settings are the command-line words, if the board has any.
	Settings() []string
	// BootTime is the time from reset to now.
	BootTime() time.Duration
	// OnCrash runs fn once after the program fails, with every other
	// activity stopped and c filled in; fn must not allocate or block.
	OnCrash(fn func(c *Crash))
	// Halt stops the machine; QEMU exits with (code<<1)|1 (microvm's
	// isa-debug-exit) or code (the i.MX6UL's semihosting).
	Halt(code int)
	// Reboot resets the machine.
	Reboot()
}

// Clock is a board whose runtime clock is dear (on the stock-Go board a
// system call into the shim, which has no vDSO) and that offers a cheaper
// one: the dump's network stack reads the time around every datagram.
type Clock interface {
	// Nanotime is a monotonic time in nanoseconds; it neither allocates
	// nor locks.
	Nanotime() int64
}

// Ethernet is a board's network interface for the dump.
type Ethernet struct {
	NIC  NIC
	Name string // FreeBSD's name: vtnet0, em0, ffec0
	Desc string // what and where, for the boot log
	// Lend, while held, keeps the normal-operation network off the NIC so
	// the image can drive it itself (the shell's blast); nil when the NIC
	// cannot be lent (another driver owns the controller until a crash).
	Lend sync.Locker
}

// NIC is a network interface that can be brought back from any state.
type NIC interface {
	debugnet.NIC
	Reset() error
}

// MaxSegments bounds the memory map a dump can describe.
const MaxSegments = 8192

// ErrPartialMemory is what Machine.Memory returns with the segments that
// fit when the memory map has more than MaxSegments: the dump goes ahead
// with those, and says so.
var ErrPartialMemory = errors.New("board: memory map longer than MaxSegments; the dump holds its first part")

// Dumper holds the panic path's state, all of it allocated up front.
type Dumper struct {
	m        Machine
	nic      NIC
	console  io.Writer
	hostname string
	version  string
	cl       *client.Client
	core     *elfcore.Core
	segs     []elfcore.Segment
	info     elfcore.Info
	kdh      wire.KernelDumpHeader
	msgbuf   []byte
	panic    []byte // the panic message (Crash.Msg)
	line     *debugnet.Line
	crashed  bool
	off      bool
	// The heap allocation count at the crash, or why there is none.
	mallocs    uint64
	mallocsErr error
}

// NewDumper prepares a dumper for m's memory through nic. hostname goes
// into the kernel dump header; version is the image's build description
// for it (its build ID is added).
func NewDumper(m Machine, nic NIC, hostname, version string) *Dumper {
	d := &Dumper{
		m: m, nic: nic, console: m.Console(), hostname: hostname, version: version,
		core:   elfcore.New(MaxSegments),
		segs:   make([]elfcore.Segment, 0, MaxSegments),
		msgbuf: make([]byte, 64<<10),
		line:   debugnet.NewLine(m.Console()),
		info:   elfcore.Info{Arch: m.Arch()},
	}
	d.identify(buildid.Self)
	return d
}

// Configure sets where dumps go. Before a crash it makes the client (and
// may allocate); after one, only the addresses and path can change, which
// the client takes without allocating.
func (d *Dumper) Configure(cfg client.Config) error {
	if d.crashed {
		if d.cl == nil || !sameTuning(d.cl.Config(), cfg) {
			return errTuningAfterCrash
		}
		if err := d.cl.Retarget(cfg.Client, cfg.Server, cfg.Gateway, cfg.Path); err != nil {
			return err
		}
		d.off = false
		return nil
	}
	if cfg.Console == nil {
		cfg.Console = d.console
	}
	// The core's segments are the machine's physical memory, whose
	// addresses are bus addresses on these boards (no IOMMU): a NIC that
	// gathers reads the dump's pages in place.
	cfg.BusAddr = d.core.Phys
	if ck, ok := d.m.(Clock); ok && cfg.Clock == nil {
		cfg.Clock = ck.Nanotime
	}
	cl, err := client.New(d.nic, cfg)
	if err != nil {
		return err
	}
	d.cl, d.off = cl, false
	return nil
}

// Sample is the start of the memory a dump holds, at most n bytes, and
// its bus address: what the shell's blast sends, so that the NIC reads RAM
// as it does in a dump.
func (d *Dumper) Sample(n int) ([]byte, uint64, error) {
	// A few segments: the first is all it needs, and a RAM filled for a
	// benchmark may have no heap left for the whole map.
	var some [4]elfcore.Segment
	segs, err := d.m.Memory(some[:0])
	if len(segs) == 0 {
		return nil, 0, fmt.Errorf("board: no memory to sample (%v)", err)
	}
	s := segs[0]
	return s.Data[:min(n, len(s.Data))], s.Phys, nil
}

// sameTuning reports whether b differs from a in addresses and path only
// (a has its defaults filled in).
func sameTuning(a, b client.Config) bool {
	if err := b.Validate(); err != nil {
		return true // Retarget reports the error
	}
	return a.ServerPort == b.ServerPort && a.ClientPort == b.ClientPort &&
		a.Polls == b.Polls && a.PollDelay == b.PollDelay && a.Retries == b.Retries &&
		a.ARPRetries == b.ARPRetries && a.Window == b.Window && a.MaxWindow == b.MaxWindow && a.Batch == b.Batch &&
		a.SendZeros == b.SendZeros && a.SingleAcks == b.SingleAcks && a.Encrypt == b.Encrypt && a.ElideEncrypted == b.ElideEncrypted
}

// Off turns dumping off until the next Configure.
func (d *Dumper) Off() { d.off = true }

// Config is the current configuration; ok is false when dumps are off.
func (d *Dumper) Config() (cfg client.Config, ok bool) {
	if d.cl == nil || d.off {
		return client.Config{}, false
	}
	return d.cl.Config(), true
}

// Crashed records the crash the board captured: the registers and the
// panic message. It does not allocate.
func (d *Dumper) Crashed(c *Crash) {
	d.mallocs, d.mallocsErr = goruntime.Mallocs()
	d.crashed = true
	d.info.Regs = c.Regs
	d.info.PID = 1
	switch c.Reason {
	case Fault:
		d.info.Signal = 11 // SIGSEGV
	case Signal:
		d.info.Signal = uint16(c.Code)
	default:
		d.info.Signal = 6 // SIGABRT: what gdb shows for an abort
	}
	d.panic = c.Msg
	if len(d.panic) == 0 {
		// The board found no message: say what it saw.
		d.line.S("board: ").S(c.Reason.String()).S(" (code ").U(c.Code).S(") with no panic message\n").Flush()
		d.panic = append(d.msgbuf[:0], c.Reason.String()...)
	}
	d.info.Panic = d.panic
}

// AllocsSinceCrash is the number of heap allocations since Crashed, counted
// exactly and without locks (board/goruntime); err says why there is no
// count. It does not allocate.
func (d *Dumper) AllocsSinceCrash() (n uint64, err error) {
	if d.mallocsErr != nil {
		return 0, d.mallocsErr
	}
	now, err := goruntime.Mallocs()
	if err != nil {
		return 0, err
	}
	return now - d.mallocs, nil
}

// Panic is the recorded panic message.
func (d *Dumper) Panic() []byte { return d.panic }

// Backtrace writes the runtime's traceback of the crash from the console
// output: everything from the first "goroutine " line after the last
// panic message.
func (d *Dumper) Backtrace(w io.Writer) {
	n := d.m.MsgBuf(d.msgbuf)
	b := d.msgbuf[:n]
	if i := lastAtLineStart(b, "panic: "); i >= 0 {
		b = b[i:]
	}
	if i := bytes.Index(b, []byte("goroutine ")); i >= 0 {
		w.Write(b[i:]) //nolint:errcheck // the console
		return
	}
	w.Write(noTraceback) //nolint:errcheck
}

// noTraceback is made in advance: a string converted for Write at the
// crash would allocate, and io.WriteString's interface check can make
// the runtime add an itab, which it refuses while panicking.
var noTraceback = []byte("no traceback on the console\n")

// Dump sends the machine's memory as an ELF core, with the KDH, to the
// configured server. It resets the NIC first and does not allocate.
func (d *Dumper) Dump() error {
	if d.cl == nil || d.off {
		return errNotConfigured
	}
	if err := d.nic.Reset(); err != nil {
		d.line.S("netdump: resetting the interface failed: ").S(err.Error()).S("\r\n").Flush()
		return err
	}
	segs, err := d.m.Memory(d.segs[:0])
	if err == ErrPartialMemory { // not errors.Is: see noTraceback
		d.line.S("netdump: ").S(err.Error()).S("\r\n").Flush()
	} else if err != nil {
		return err
	}
	if err := d.core.Build(segs, &d.info); err != nil {
		return err
	}
	d.kdh = wire.KernelDumpHeader{
		Version:             wire.KDHVersion,
		ArchitectureVersion: d.info.Arch.KDHVersion,
		DumpTime:            uint64(time.Now().Unix()),
		BlockSize:           wire.DataSize,
	}
	wire.SetText(d.kdh.Magic[:], wire.KDHMagic)
	wire.SetText(d.kdh.Architecture[:], d.info.Arch.KDHName)
	wire.SetText(d.kdh.Hostname[:], d.hostname)
	d.kdh.SetVersionString(d.version)
	n := copy(d.kdh.PanicString[:len(d.kdh.PanicString)-1], d.panic)
	clear(d.kdh.PanicString[n:])
	return d.cl.Dump(d.core, &d.kdh, d.m.MemoryMB())
}

// Errors of the panic path, made in advance: after the crash nothing may
// allocate.
var (
	errNotConfigured    = errors.New("board: netdump is not configured")
	errTuningAfterCrash = errors.New("board: only addresses and path can change after the crash")
)

// Stats are the last dump's statistics.
func (d *Dumper) Stats() client.Stats {
	if d.cl == nil {
		return client.Stats{}
	}
	return d.cl.Stats()
}

// PanicMessage finds the last panic or fatal-error message the Go runtime
// printed in console output b: the text after "panic: " or "fatal error: "
// to the end of its line, without the " [recovered]" a re-panic adds, or a
// whole "SIGILL: illegal instruction" line of an unexpected signal. The
// result aliases b.
func PanicMessage(b []byte) []byte {
	at, skip := -1, 0
	for _, p := range [...]string{"panic: ", "fatal error: ", "SIG"} {
		i := lastAtLineStart(b, p)
		if p == "SIG" && i >= 0 && !signalLine(b[i:]) {
			continue
		}
		if i > at {
			at, skip = i, len(p)
			if p == "SIG" {
				skip = 0
			}
		}
	}
	if at < 0 {
		return nil
	}
	m := b[at+skip:]
	if i := bytes.IndexByte(m, '\n'); i >= 0 {
		m = m[:i]
	}
	return bytes.TrimSuffix(bytes.TrimRight(m, "\r"), []byte(" [recovered]"))
}

// signalLine reports whether b starts like "SIGSEGV: segmentation violation".
func signalLine(b []byte) bool {
	i := 3
	for i < len(b) && b[i] >= 'A' && b[i] <= 'Z' {
		i++
	}
	return i > 3 && i+1 < len(b) && b[i] == ':' && b[i+1] == ' '
}

// lastAtLineStart is the index of the last occurrence of p at the start of
// a line of b, or right after a shell prompt ("tamadump> ", "db> ": the
// runtime's message follows the prompt when a background goroutine
// crashes), or -1.
func lastAtLineStart(b []byte, p string) int {
	for end := len(b); end > 0; {
		i := bytes.LastIndex(b[:end], []byte(p))
		if i < 0 {
			return -1
		}
		if i == 0 || b[i-1] == '\n' || i >= 2 && b[i-2] == '>' && b[i-1] == ' ' {
			return i
		}
		end = i
	}
	return -1
}

// ParseConfig reads dumpon-style settings given as strings at build time
// or on a command line: server and client addresses, optional gateway and
// path.
func ParseConfig(server, clientIP, gateway, path string) (client.Config, error) {
	var c client.Config
	var err error
	if c.Server, err = netip.ParseAddr(server); err != nil {
		return c, fmt.Errorf("server %q: %w", server, err)
	}
	if c.Client, err = netip.ParseAddr(clientIP); err != nil {
		return c, fmt.Errorf("client %q: %w", clientIP, err)
	}
	if gateway != "" {
		if c.Gateway, err = netip.ParseAddr(gateway); err != nil {
			return c, fmt.Errorf("gateway %q: %w", gateway, err)
		}
	}
	c.Path = path
	return c, c.Validate()
}
