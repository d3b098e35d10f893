package stockgo

import (
	"runtime"
	"unsafe"

	"github.com/tamadump/tamadump/board/amd64"
)

// Watch starts the crash watcher: a goroutine locked to its own thread,
// its stack grown in advance (growing it after the crash would allocate),
// waiting in WaitCrash. fn runs once on it after the program died, with
// every other thread frozen; it must not allocate or block. When the
// program died in the runtime's exit (Reason CrashExit), c.Regs are those
// of the goroutine that was running, as it saved them on switching to the
// system stack: what a debugger needs to walk back to the code that
// panicked (see RuntimeLayoutOK).
//
// Watch raises GOMAXPROCS to Procs: the watcher comes back from its system
// call on an idle P, and the threads frozen at the crash keep theirs.
func Watch(fn func(c *Crash)) {
	if runtime.GOMAXPROCS(0) < Procs {
		runtime.GOMAXPROCS(Procs)
	}
	checkRuntimeLayout()
	w := &watcher{runs: make([]Run, maxRuns)}
	ready := make(chan struct{})
	go func() {
		runtime.LockOSThread()
		growStack(0)
		close(ready)
		if err := WaitCrash(&w.crash); err != nil {
			return
		}
		if w.crash.Reason == CrashExit {
			w.panickingGoroutine()
		}
		fn(&w.crash)
	}()
	<-ready
}

// Procs is the GOMAXPROCS Watch sets (one CPU, time-sliced by the shim).
const Procs = 8

// maxRuns bounds the memory map Watch reads to check pointers.
const maxRuns = 8192

type watcher struct {
	crash Crash
	runs  []Run
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

// runtimeLayout is where the runtime's g, m and gobuf keep what
// amd64.PanickingGoroutine reads, for Go 1.26 on linux/amd64, read from a
// binary's DWARF and checked at run time by checkRuntimeLayout.
var runtimeLayout = amd64.Layout{GM: 48, GSchedSP: 56, GSchedPC: 64, GSchedBP: 96, MG0: 0, MCurg: 184}

var layoutOK bool

// RuntimeLayoutOK reports whether the runtime's layout matched what Watch
// reads to find the panicking goroutine; when it did not, a crash's
// registers stay the dying thread's.
func RuntimeLayoutOK() bool { return layoutOK }

// getg returns the running goroutine's g (asm_linux_amd64.s).
func getg() uintptr

// rdtsc reads the time-stamp counter.
func rdtsc() uint64

func word(addr uintptr) uintptr {
	return *(*uintptr)(*(*unsafe.Pointer)(unsafe.Pointer(&addr)))
}

func checkRuntimeLayout() {
	l := &runtimeLayout
	g := getg()
	m := word(g + l.GM)
	layoutOK = m != 0 && word(m+l.MCurg) == g && word(word(m+l.MG0)+l.GM) == m
}

// panickingGoroutine turns the registers of a thread that died on its
// system stack into those of the goroutine it was running. Every read is
// checked against the memory map first.
func (w *watcher) panickingGoroutine() {
	if layoutOK {
		amd64.PanickingGoroutine(&w.crash.Regs, &runtimeLayout, w.read)
	}
}

// read is a word of the program's memory, where it is mapped.
func (w *watcher) read(addr uintptr) (uintptr, bool) {
	if !w.mapped(addr) {
		return 0, false
	}
	return word(addr), true
}

// UserBase is where memory the program can read starts: the shim keeps
// the first 4 MiB to itself so that nil dereferences fault.
const UserBase = 4 << 20

// mapped reports whether the 8 bytes at addr are in mapped RAM the
// program may read.
func (w *watcher) mapped(addr uintptr) bool {
	n, err := MemMap(w.runs)
	if err != nil {
		return false
	}
	a := uint64(addr)
	for _, r := range w.runs[:min(n, len(w.runs))] {
		if a >= r.VAddr && a+8 <= r.VAddr+r.Len && a >= UserBase {
			return true
		}
	}
	return false
}
