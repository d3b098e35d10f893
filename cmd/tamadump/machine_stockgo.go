//go:build linux && amd64 && !tamago

package main

import (
	"fmt"
	"io"
	"os"
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
	bc     board.Crash
	allocs [1]metrics.Sample
}

func newMachine() machine {
	info, err := stockgo.ReadInfo()
	if err != nil {
		fmt.Fprintf(os.Stderr, "tamadump: %v: boot it with the shim (make qemu BOARD=stockgo)\n", err)
		os.Exit(2)
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

func (s *shimMachine) BootTime() time.Duration { return s.info.SinceBoot() }

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
		if r.PAddr+r.Len <= stockgo.UserBase {
			continue
		}
		if r.PAddr < stockgo.UserBase {
			cut := stockgo.UserBase - r.PAddr
			r.PAddr, r.VAddr, r.Len = r.PAddr+cut, r.VAddr+cut, r.Len-cut
		}
		if len(dst) == cap(dst) {
			return dst, board.ErrPartialMemory
		}
		dst = append(dst, elfcore.Segment{Phys: r.PAddr, Virt: r.VAddr, Data: phys(r.PAddr, r.Len)})
	}
	return dst, err
}

// OnCrash hands fn to the shim's crash watcher.
func (s *shimMachine) OnCrash(fn func(*board.Crash)) {
	stockgo.Watch(func(c *stockgo.Crash) {
		s.bc = board.Crash{Reason: board.Panic, Code: c.Code, Addr: c.Addr, Regs: c.Regs}
		switch c.Reason {
		case stockgo.CrashFault:
			s.bc.Reason = board.Fault
		case stockgo.CrashSignal:
			s.bc.Reason = board.Signal
		}
		fn(&s.bc)
	})
	if !stockgo.RuntimeLayoutOK() {
		fmt.Fprintf(os.Stderr, "tamadump: unexpected runtime layout; a crash's registers will be the dying thread's\n")
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
