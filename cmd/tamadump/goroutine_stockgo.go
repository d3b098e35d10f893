//go:build linux && amd64 && !tamago

package main

import (
	"unsafe"

	"github.com/tamadump/tamadump/netdump/elfcore"
)

// Offsets into the runtime's g, m and gobuf for Go 1.26 on linux/amd64
// (read from the binary's DWARF; checked at boot by checkRuntimeLayout).
const (
	gM       = 48
	gSchedSP = 56
	gSchedPC = 64
	gSchedBP = 96
	mG0      = 0
	mCurg    = 184
)

// layoutOK says the offsets matched the running runtime.
var layoutOK bool

// getg returns the running goroutine's g (tsc_amd64.s).
func getg() uintptr

func word(addr uintptr) uintptr {
	return *(*uintptr)(*(*unsafe.Pointer)(unsafe.Pointer(&addr)))
}

// checkRuntimeLayout verifies the offsets on the calling goroutine.
func checkRuntimeLayout() {
	g := getg()
	m := word(g + gM)
	layoutOK = m != 0 && word(m+mCurg) == g && word(word(m+mG0)+gM) == m
}

// panickingGoroutine turns the registers of a thread that died on its
// system stack (R14 holds g0 in Go code) into those of the goroutine it
// was running, saved when it switched stacks: what a debugger needs to
// walk back to the code that panicked. mapped guards every read.
func panickingGoroutine(regs *elfcore.Regs, mapped func(addr uintptr) bool) {
	g0 := uintptr(regs[elfcore.R14])
	if !layoutOK || !mapped(g0+gM) {
		return
	}
	m := word(g0 + gM)
	if !mapped(m+mCurg) || word(m+mG0) != g0 {
		return // not on a system stack
	}
	curg := word(m + mCurg)
	if curg == 0 || curg == g0 || !mapped(curg+gSchedBP) {
		return
	}
	regs[elfcore.RIP] = uint64(word(curg + gSchedPC))
	regs[elfcore.RSP] = uint64(word(curg + gSchedSP))
	regs[elfcore.RBP] = uint64(word(curg + gSchedBP))
	regs[elfcore.R14] = uint64(curg)
}
