package stockgo

import (
	"errors"
	"io"
	"math/bits"
	"net/netip"
	"os"
	"syscall"
	"time"
	"unsafe"

	"github.com/tamadump/tamadump/board"
	"github.com/tamadump/tamadump/board/amd64"
	"github.com/tamadump/tamadump/board/microvm"
	"github.com/tamadump/tamadump/drivers/bus"
	"github.com/tamadump/tamadump/netdump/elfcore"
)

// Machine is the stock-Go board (board.Machine): the program runs on the
// shim, which describes the machine and wakes a watcher thread when the
// program dies.
type Machine struct {
	info Info
	// nsPerTick is nanoseconds per TSC tick, in 32.32 fixed point.
	nsPerTick uint64
	runs      []Run
	crash     board.Crash
	msgbuf    []byte // the console output at the crash, where Crash.Msg points
	msg       []byte // room for a message of the board's own
	net       microvm.Net
}

// New describes the machine the shim booted; it fails when the program
// does not run on the shim.
func New() (*Machine, error) {
	info, err := ReadInfo()
	if err != nil {
		return nil, err
	}
	if info.TSCHz == 0 {
		return nil, errNoTSCRate
	}
	return &Machine{info: info, nsPerTick: (uint64(time.Second) << 32) / info.TSCHz, runs: make([]Run, board.MaxSegments), msgbuf: make([]byte, MsgBufSize), msg: make([]byte, 0, 128)}, nil
}

// errNoTSCRate: the shim could not calibrate the TSC, the board's clock.
var errNoTSCRate = errors.New("stockgo: the shim reports no TSC rate")

// MsgBufSize is how much console output the shim keeps.
const MsgBufSize = 64 << 10

func (s *Machine) Name() string        { return "stockgo" }
func (s *Machine) Arch() *elfcore.Arch { return &elfcore.AMD64 }

// Settings are the lower-case NAME=VALUE words of the kernel command line
// (the shim passes them as environment) and any other arguments.
func (s *Machine) Settings() []string {
	var w []string
	for _, kv := range os.Environ() {
		if kv != "" && kv[0] >= 'a' && kv[0] <= 'z' {
			w = append(w, kv)
		}
	}
	return append(w, os.Args[1:]...)
}

func (s *Machine) BootTime() time.Duration { return time.Duration(s.Nanotime()) }

// Nanotime is board.Clock: the time since the shim started by the TSC it
// calibrated, scaled in fixed point (TCG emulates floating point in
// software). The runtime's clock is a clock_gettime system call into the
// shim here, which took a third of the guest's time in a dump.
func (s *Machine) Nanotime() int64 {
	hi, lo := bits.Mul64(rdtsc()-s.info.BootTSC, s.nsPerTick)
	return int64(hi<<32 | lo>>32)
}

func (s *Machine) MemoryMB() uint64 {
	var n uint64
	for i := range s.info.NRAM {
		n += s.info.RAMLen[i]
	}
	return n >> 20
}

// Console output goes straight to the shim (fd 1 is COM1), never through
// os.File, whose locks a frozen thread might hold after a crash.
func (s *Machine) Console() io.Writer      { return rawFD(1) }
func (s *Machine) ConsoleInput() io.Reader { return rawFD(0) }
func (s *Machine) MsgBuf(dst []byte) int   { return MsgBuf(dst) }
func (s *Machine) Halt(code int)           { Halt(code) }
func (s *Machine) Reboot()                 { Reboot() }

// Ethernet is the microvm NIC, its rings and buffers in the DMA region
// the shim reserved.
func (s *Machine) Ethernet(want string) (board.Ethernet, error) {
	return s.net.Ethernet(bus.DMA{Mem: phys(s.info.DMABase, s.info.DMALen), Addr: s.info.DMABase}, want)
}

func (s *Machine) StartNetwork(addr netip.Prefix, gw netip.Addr) error {
	return s.net.StartNetwork(addr, gw)
}

// Memory is every RAM page above the shim's, at its physical address and
// with the address it is mapped at, so a debugger finds the Go heap and
// stacks where the program saw them.
func (s *Machine) Memory(dst []elfcore.Segment) ([]elfcore.Segment, error) {
	n, err := MemMap(s.runs)
	if err != nil {
		return dst, err
	}
	if n > len(s.runs) {
		err = board.ErrPartialMemory
	}
	for _, r := range s.runs[:min(n, len(s.runs))] {
		if r.PAddr+r.Len <= UserBase {
			continue
		}
		if r.PAddr < UserBase {
			cut := UserBase - r.PAddr
			r.PAddr, r.VAddr, r.Len = r.PAddr+cut, r.VAddr+cut, r.Len-cut
		}
		if len(dst) == cap(dst) {
			return dst, board.ErrPartialMemory
		}
		dst = append(dst, elfcore.Segment{Phys: r.PAddr, Virt: r.VAddr, Data: phys(r.PAddr, r.Len)})
	}
	return dst, err
}

// OnCrash hands fn to the shim's crash watcher, with the crash and its
// message: for a fault the runtime never saw, the board's description;
// otherwise the runtime's last panic or fatal error in the console output
// (a Go panic, or a signal the runtime turned into one), else the signal.
func (s *Machine) OnCrash(fn func(*board.Crash)) {
	Watch(func(c *Crash) {
		s.crash = board.Crash{Reason: board.Panic, Code: c.Code, Addr: c.Addr, Regs: c.Regs}
		switch c.Reason {
		case CrashFault:
			s.crash.Reason = board.Fault
		case CrashSignal:
			s.crash.Reason = board.Signal
		}
		if s.crash.Reason == board.Fault {
			s.crash.Msg = amd64.FaultMessage(s.msg[:0], c.Code, c.Regs[elfcore.RIP], c.Addr)
		} else {
			n := MsgBuf(s.msgbuf)
			s.crash.Msg = board.PanicMessage(s.msgbuf[:n])
		}
		if len(s.crash.Msg) == 0 && s.crash.Reason == board.Signal {
			s.crash.Msg = append(append(s.msg[:0], "fatal signal "...), byte('0'+c.Code/10%10), byte('0'+c.Code%10))
		}
		fn(&s.crash)
	})
	if !RuntimeLayoutOK() {
		io.WriteString(rawFD(2), "stockgo: unexpected runtime layout; a crash's registers will be the dying thread's\r\n") //nolint:errcheck
	}
}

// rawFD is a file descriptor used with plain system calls.
type rawFD int

func (f rawFD) Write(p []byte) (int, error) {
	n, err := syscall.Write(int(f), p)
	if n < 0 {
		n = 0
	}
	return n, err
}

func (f rawFD) Read(p []byte) (int, error) {
	n, err := syscall.Read(int(f), p)
	if n == 0 && err == nil {
		return 0, io.EOF
	}
	if n < 0 {
		n = 0
	}
	return n, err
}

// phys views identity-mapped physical memory outside the Go heap.
func phys(addr, n uint64) []byte {
	a := uintptr(addr)
	return unsafe.Slice((*byte)(*(*unsafe.Pointer)(unsafe.Pointer(&a))), n)
}
