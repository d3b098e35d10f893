package imx6ul

import (
	"strconv"

	"github.com/tamadump/tamadump/board"
	"github.com/tamadump/tamadump/netdump/elfcore"
)

// ARM exception vector offsets the board captures with all registers.
const (
	VectorUndefined     = 0x04
	VectorPrefetchAbort = 0x0c
	VectorDataAbort     = 0x10
)

// Crash is what the board captured at the failure.
//
// Reason is board.Panic for an unrecovered panic or a fatal runtime error
// (goos.Exit with a non-zero code; Code is that code) and board.Fault for
// an ARM exception (Code is its vector offset, Vector*; other vectors
// reach the board through tamago's handler, which keeps no registers).
// Addr is the faulting address of an abort (DFAR or IFAR).
//
// Regs, in elfcore's ARM order: for an exception all registers of the
// interrupted context, cpsr being its SPSR (sp and lr are System mode's,
// where all Go code runs). For a panic, the panicking goroutine as it was
// saved when it switched to the system stack to die: pc in
// runtime.systemstack_switch, sp in its own stack, lr 0, r10 its g —
// what a debugger uses for a parked goroutine, whose saved link register
// on the stack leads through runtime.fatalpanic and runtime.gopanic to
// the function that panicked. Other registers are not kept by Go calls
// and are 0.
//
// Msg is the panic message the runtime printed (board.PanicMessage of the
// console output) or, for an exception, Message's description of it.
type Crash struct {
	board.Crash
	// FaultStatus is DFSR (data abort) or IFSR (prefetch abort).
	FaultStatus uint32
}

// Message appends a line describing an exception to b ("data abort at pc
// 0x80012345: write to 0x4, DFSR 0x805 (translation fault, section)");
// for a panic it appends nothing: the runtime printed it. It does not
// allocate when b has room.
func (c *Crash) Message(b []byte) []byte {
	if c.Reason != board.Fault {
		return b
	}
	hex := func(b []byte, v uint64) []byte {
		b = append(b, "0x"...)
		return strconv.AppendUint(b, v, 16)
	}
	switch c.Code {
	case VectorUndefined:
		b = append(b, "undefined instruction"...)
	case VectorPrefetchAbort:
		b = append(b, "prefetch abort"...)
	case VectorDataAbort:
		b = append(b, "data abort"...)
	default:
		b = append(b, "exception at vector "...)
		return hex(b, c.Code)
	}
	b = hex(append(b, " at pc "...), c.Regs[elfcore.ARMPC])
	if c.Code == VectorUndefined {
		return b
	}
	b = append(b, ": "...)
	if c.Code == VectorDataAbort {
		if c.FaultStatus&fsrWnR != 0 {
			b = append(b, "write to "...)
		} else {
			b = append(b, "read from "...)
		}
	} else {
		b = append(b, "fetch from "...)
	}
	b = hex(b, c.Addr)
	if c.Code == VectorDataAbort {
		b = append(b, ", DFSR "...)
	} else {
		b = append(b, ", IFSR "...)
	}
	b = hex(b, uint64(c.FaultStatus))
	b = append(b, " ("...)
	b = append(b, faultName(c.FaultStatus)...)
	return append(b, ')')
}

// Fault status (short-descriptor format: FS is bits 10 and 3:0).
const fsrWnR = 1 << 11

func faultName(fsr uint32) string {
	switch fsr&0xf | fsr>>6&0x10 {
	case 0x01:
		return "alignment fault"
	case 0x02:
		return "debug event"
	case 0x03:
		return "access flag fault, section"
	case 0x06:
		return "access flag fault, page"
	case 0x05:
		return "translation fault, section"
	case 0x07:
		return "translation fault, page"
	case 0x09:
		return "domain fault, section"
	case 0x0b:
		return "domain fault, page"
	case 0x0d:
		return "permission fault, section"
	case 0x0f:
		return "permission fault, page"
	case 0x08:
		return "synchronous external abort"
	case 0x16:
		return "asynchronous external abort"
	}
	return "other fault"
}
