package amd64

import (
	"testing"

	"github.com/tamadump/tamadump/netdump/elfcore"
)

var layout = Layout{GM: 48, GSchedSP: 56, GSchedPC: 64, GSchedBP: 96, MG0: 0, MCurg: 184}

// memory is a word-addressed fake of the crashed program's memory.
type memory map[uintptr]uintptr

func (m memory) read(a uintptr) (uintptr, bool) { v, ok := m[a]; return v, ok }

func TestPanickingGoroutine(t *testing.T) {
	const g0, m, curg = 0x1000, 0x2000, 0x3000
	mem := memory{g0 + 48: m, m + 0: g0, m + 184: curg, curg + 56: 0xc000, curg + 64: 0x401000, curg + 96: 0xc100}
	var regs elfcore.Regs
	regs[elfcore.R14], regs[elfcore.RIP] = g0, 0x999
	if !PanickingGoroutine(&regs, &layout, mem.read) {
		t.Fatal("not recovered")
	}
	if regs[elfcore.RIP] != 0x401000 || regs[elfcore.RSP] != 0xc000 || regs[elfcore.RBP] != 0xc100 || regs[elfcore.R14] != curg {
		t.Fatalf("regs %x", regs)
	}

	// A thread on a goroutine's stack (m.g0 is not R14) keeps its own.
	mem[m+0] = 0x5000
	regs = elfcore.Regs{}
	regs[elfcore.R14], regs[elfcore.RIP] = g0, 0x999
	if PanickingGoroutine(&regs, &layout, mem.read) || regs[elfcore.RIP] != 0x999 {
		t.Fatalf("not on g0 but recovered: %x", regs)
	}
	// Unreadable memory: the same.
	mem[m+0] = g0
	delete(mem, curg+96)
	if PanickingGoroutine(&regs, &layout, mem.read) || regs[elfcore.RIP] != 0x999 {
		t.Fatalf("unreadable g.sched but recovered: %x", regs)
	}
}

func TestFaultMessage(t *testing.T) {
	got := string(FaultMessage(nil, 14, 0x4a1b2c, 0x18))
	if want := "Fatal trap 14: page fault at rip 0x4a1b2c, address 0x18"; got != want {
		t.Fatalf("%q, want %q", got, want)
	}
	b := make([]byte, 0, 96)
	if n := testing.AllocsPerRun(10, func() { FaultMessage(b[:0], 6, ^uint64(0), ^uint64(0)) }); n != 0 {
		t.Fatalf("%v allocations", n)
	}
}
