// Package amd64 is what both amd64 boards (TamaGo's and stock Go's on the
// shim) do alike at a crash: turn the registers of a thread that died on
// its system stack into those of the goroutine it was running, and
// describe a CPU exception. Registers are in elfcore's order (Linux's
// user_regs_struct), the one register table of the image.
package amd64

import (
	"github.com/tamadump/tamadump/netdump/elfcore"
)

// Layout is where the runtime keeps what PanickingGoroutine reads: field
// offsets of its g (the goroutine), m (the thread) and g.sched (the
// goroutine's saved registers). They depend on the Go version and GOOS;
// each board states its own and checks them at boot.
type Layout struct {
	GM, GSchedSP, GSchedPC, GSchedBP uintptr
	MG0, MCurg                       uintptr
}

// Memory reads one word of the crashed program's memory; ok is false
// where nothing may be read.
type Memory func(addr uintptr) (v uintptr, ok bool)

// PanickingGoroutine replaces the registers of a thread that died on its
// system stack (g0: R14 holds the running g in Go code) with those the
// goroutine it was running saved when it switched there (g.sched: pc in
// runtime.systemstack_switch, sp and bp in its own stack), which is what a
// debugger uses for a parked goroutine: its frame-pointer chain leads
// through runtime.fatalpanic and runtime.gopanic to the code that
// panicked. It reports whether it did; a thread that was not on its
// system stack, or memory that does not read back as such, leaves regs
// alone. It does not allocate.
func PanickingGoroutine(regs *elfcore.Regs, l *Layout, mem Memory) bool {
	g0 := uintptr(regs[elfcore.R14])
	m, ok := mem(g0 + l.GM)
	if !ok || m == 0 {
		return false
	}
	if g, ok := mem(m + l.MG0); !ok || g != g0 {
		return false // not on a system stack
	}
	curg, ok := mem(m + l.MCurg)
	if !ok || curg == 0 || curg == g0 {
		return false
	}
	pc, ok1 := mem(curg + l.GSchedPC)
	sp, ok2 := mem(curg + l.GSchedSP)
	bp, ok3 := mem(curg + l.GSchedBP)
	if !ok1 || !ok2 || !ok3 {
		return false
	}
	regs[elfcore.RIP], regs[elfcore.RSP], regs[elfcore.RBP], regs[elfcore.R14] = uint64(pc), uint64(sp), uint64(bp), uint64(curg)
	return true
}

// FaultMessage appends the panic message of a CPU exception to b, in the
// words of FreeBSD's trap(): "Fatal trap 14: page fault at rip 0x4a1b2c,
// address 0x18". It does not allocate when b has room for 96 bytes.
func FaultMessage(b []byte, vector, rip, addr uint64) []byte {
	b = append(b, "Fatal trap "...)
	b = appendUint(b, vector, 10)
	b = append(b, ": "...)
	b = append(b, TrapName(vector)...)
	b = append(b, " at rip 0x"...)
	b = appendUint(b, rip, 16)
	b = append(b, ", address 0x"...)
	return appendUint(b, addr, 16)
}

// TrapName names an exception vector.
func TrapName(v uint64) string {
	switch v {
	case 0:
		return "divide error"
	case 3:
		return "breakpoint"
	case 6:
		return "invalid opcode"
	case 13:
		return "general protection fault"
	case 14:
		return "page fault"
	}
	return "exception"
}

func appendUint(b []byte, v uint64, base uint64) []byte {
	var d [20]byte
	i := len(d)
	for {
		i--
		d[i] = "0123456789abcdef"[v%base]
		v /= base
		if v == 0 {
			break
		}
	}
	return append(b, d[i:]...)
}
