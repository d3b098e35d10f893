//go:build linux && amd64 && !tamago

package main

import (
	"fmt"
	"io"
	"os"
	"runtime"
	"runtime/metrics"
	"syscall"
	"time"

	"github.com/tamadump/tamadump/board"
	"github.com/tamadump/tamadump/board/stockgo"
	"github.com/tamadump/tamadump/drivers/bus"
	"github.com/tamadump/tamadump/netdump/elfcore"
)

// shimMachine is the stock-Go board: the program runs on the shim, which
// reports the machine and wakes a watcher thread when the program dies.
type shimMachine struct {
	info   stockgo.Info
	runs   []stockgo.Run
	crash  stockgo.Crash
	bc     board.Crash
	allocs [1]metrics.Sample
}

func newMachine() machine {
	info, err := stockgo.ReadInfo()
	if err != nil {
		fmt.Fprintf(os.Stderr, "tamadump: %v: boot it with the shim (make qemu BOARD=stockgo)\n", err)
		os.Exit(2)
	}
	// The crash watcher needs an idle P to come back from its system call
	// (stockgo.WaitCrash), and the threads frozen at the crash keep theirs:
	// with more Ps than busy goroutines one is always idle.
	runtime.GOMAXPROCS(watcherProcs)
	checkRuntimeLayout()
	if !layoutOK {
		fmt.Fprintf(os.Stderr, "tamadump: unexpected runtime layout; a crash's registers will be the dying thread's\n")
	}
	return &shimMachine{info: info, runs: make([]stockgo.Run, board.MaxSegments)}
}

func (s *shimMachine) Name() string     { return "stockgo" }
func (s *shimMachine) Hostname() string { return hostname }

// Settings are the lower-case NAME=VALUE words of the kernel command line
// (the shim passes them as environment) and any other arguments.
func (s *shimMachine) Settings() []string {
	var w []string
	for _, kv := range os.Environ() {
		if kv != "" && kv[0] >= 'a' && kv[0] <= 'z' {
			w = append(w, kv)
		}
	}
	return append(w, os.Args[1:]...)
}

// BootTime is the time since the shim started, by the TSC it calibrated.
func (s *shimMachine) BootTime() time.Duration {
	if s.info.TSCHz == 0 {
		return 0
	}
	return time.Duration(float64(rdtsc()-s.info.BootTSC) / float64(s.info.TSCHz) * 1e9)
}

func (s *shimMachine) MemoryMB() uint64 {
	var n uint64
	for i := range s.info.NRAM {
		n += s.info.RAMLen[i]
	}
	return n >> 20
}

// Console output goes straight to the shim (fd 1 is COM1), never through
// os.File, whose locks a frozen thread might hold after a crash.
func (s *shimMachine) Console() io.Writer      { return rawFD(1) }
func (s *shimMachine) ConsoleInput() io.Reader { return rawFD(0) }
func (s *shimMachine) MsgBuf(dst []byte) int   { return stockgo.MsgBuf(dst) }
func (s *shimMachine) Halt(code int)           { stockgo.Halt(code) }
func (s *shimMachine) Reboot()                 { stockgo.Reboot() }
func (s *shimMachine) DMA() bus.DMA {
	return bus.DMA{Mem: phys(s.info.DMABase, s.info.DMALen), Addr: s.info.DMABase}
}

// Mallocs reads the runtime's allocation count; metrics.Read with a
// preallocated sample does not allocate, and the watcher is an ordinary
// goroutine.
func (s *shimMachine) Mallocs() (uint64, bool) {
	s.allocs[0].Name = "/gc/heap/allocs:objects"
	metrics.Read(s.allocs[:])
	if s.allocs[0].Value.Kind() != metrics.KindUint64 {
		return 0, false
	}
	return s.allocs[0].Value.Uint64(), true
}

// watcherProcs is GOMAXPROCS on the shim (one CPU, time-sliced).
const watcherProcs = 8

// lowMemory is kernel-only: the shim keeps the first 4 MiB from user
// mode so that nil dereferences fault, so the dump starts above it.
const lowMemory = 4 << 20

// Memory is every RAM page above the shim's, at its physical address and
// with the address it is mapped at, so a debugger finds the Go heap and
// stacks where the program saw them.
func (s *shimMachine) Memory(dst []elfcore.Segment) ([]elfcore.Segment, error) {
	n, err := stockgo.MemMap(s.runs)
	if err != nil {
		return dst, err
	}
	if n > len(s.runs) {
		err = board.ErrPartialMemory
	}
	for _, r := range s.runs[:min(n, len(s.runs))] {
		if r.PAddr+r.Len <= lowMemory {
			continue
		}
		if r.PAddr < lowMemory {
			cut := lowMemory - r.PAddr
			r.PAddr, r.VAddr, r.Len = r.PAddr+cut, r.VAddr+cut, r.Len-cut
		}
		if len(dst) == cap(dst) {
			return dst, board.ErrPartialMemory
		}
		dst = append(dst, elfcore.Segment{Phys: r.PAddr, Virt: r.VAddr, Data: phys(r.PAddr, r.Len)})
	}
	return dst, err
}

// OnCrash starts the watcher: a thread of its own waiting in the shim,
// with its stack grown in advance, since growing it after the crash
// would allocate.
func (s *shimMachine) OnCrash(fn func(*board.Crash)) {
	ready := make(chan struct{})
	go func() {
		runtime.LockOSThread()
		growStack(0)
		close(ready)
		if err := stockgo.WaitCrash(&s.crash); err != nil {
			fmt.Fprintf(os.Stderr, "tamadump: crash watcher: %v\n", err)
			return
		}
		s.bc = board.Crash{Code: s.crash.Code, Addr: s.crash.Addr, Regs: s.crash.Regs}
		switch s.crash.Reason {
		case stockgo.CrashFault:
			s.bc.Reason = board.Fault
		case stockgo.CrashSignal:
			s.bc.Reason = board.Signal
		default:
			s.bc.Reason = board.Panic
			// The runtime exits on its system stack; the goroutine
			// that panicked is what a debugger wants.
			panickingGoroutine(&s.bc.Regs, s.mapped)
		}
		fn(&s.bc)
	}()
	<-ready
}

// mapped reports whether the 8 bytes at addr are in mapped RAM.
func (s *shimMachine) mapped(addr uintptr) bool {
	n, err := stockgo.MemMap(s.runs)
	if err != nil {
		return false
	}
	a := uint64(addr)
	for _, r := range s.runs[:min(n, len(s.runs))] {
		if a >= r.VAddr && a+8 <= r.VAddr+r.Len && a >= lowMemory {
			return true
		}
	}
	return false
}

// growStack touches 256 KiB of stack.
//
//go:noinline
func growStack(depth int) byte {
	var pad [32 << 10]byte
	pad[depth] = byte(depth)
	if depth < 7 {
		return growStack(depth+1) + pad[depth]
	}
	return pad[depth]
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
