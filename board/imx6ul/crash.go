//go:build tamago && arm

package imx6ul

import (
	"runtime"
	"runtime/goos"
	"strconv"

	"github.com/tamadump/tamadump/board"
	"github.com/tamadump/tamadump/netdump/elfcore"
	"github.com/usbarmory/tamago/arm"
	"github.com/usbarmory/tamago/soc/nxp/imx6ul"
)

// Crash is what the board captured at the failure.
//
// Reason is board.Panic for an unrecovered panic or a fatal runtime error
// (goos.Exit with a non-zero code; Code is that code) and board.Fault for
// an ARM exception (Code is its vector offset: 0x04 undefined instruction,
// 0x0c prefetch abort, 0x10 data abort; other vectors reach the board
// through tamago's handler, which keeps no registers). Addr is the
// faulting address of an abort (DFAR or IFAR).
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
type Crash struct {
	board.Crash
	// FaultStatus is DFSR (data abort) or IFSR (prefetch abort).
	FaultStatus uint32
}

// Message appends a line describing an exception to b ("data abort at pc
// 0x80012345: write to 0x00000004, DFSR 0x805 (translation fault,
// section)"); for a panic it appends nothing: the runtime printed it. It
// does not allocate when b has room.
func (c *Crash) Message(b []byte) []byte {
	if c.Reason != board.Fault {
		return b
	}
	hex := func(b []byte, v uint64) []byte {
		b = append(b, "0x"...)
		return strconv.AppendUint(b, v, 16)
	}
	switch c.Code {
	case arm.UNDEFINED:
		b = append(b, "undefined instruction"...)
	case arm.PREFETCH_ABORT:
		b = append(b, "prefetch abort"...)
	case arm.DATA_ABORT:
		b = append(b, "data abort"...)
	default:
		b = append(b, "exception at vector "...)
		return hex(b, c.Code)
	}
	b = hex(append(b, " at pc "...), c.Regs[elfcore.ARMPC])
	if c.Code == arm.UNDEFINED {
		return b
	}
	b = append(b, ": "...)
	if c.Code == arm.DATA_ABORT {
		if c.FaultStatus&fsrWnR != 0 {
			b = append(b, "write to "...)
		} else {
			b = append(b, "read from "...)
		}
	} else {
		b = append(b, "fetch from "...)
	}
	b = hex(b, c.Addr)
	if c.Code == arm.DATA_ABORT {
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

// runtime g/m field offsets (tamago-go 1.26.0, arm, from the runtime's
// go_asm.h; checked at init by checkRuntimeOffsets).
const (
	gStackLo     = 0
	gStackHi     = 4
	gStackGuard0 = 8
	gStackGuard1 = 12
	gM           = 24
	gSchedSP     = 28
	gSchedPC     = 32
	gSchedLR     = 44
	mG0          = 0
	mCurg        = 72
)

const (
	crashStackSize  = 256 << 10
	crashStackGuard = 2048
	maxCrashDepth   = 2 // the crash itself, one failure inside the handler

	reasonExit      = 1
	reasonException = 2

	// save area: r0-r15, cpsr, orig_r0 (elfcore's ARM order), then these
	nregs      = elfcore.ARMOrigR0 + 1
	saveCode   = nregs     // exit code or vector offset
	saveAddr   = nregs + 1 // DFAR/IFAR
	saveStatus = nregs + 2 // DFSR/IFSR
	saveWords  = nregs + 3
)

var (
	// written by the exception stubs (crash_arm.s) and by the Exit hook
	excSave  [saveWords]uint32
	exitSave [saveWords]uint32

	pendingReason uint32
	crashDepth    uint32 // incremented by enterCrash
	g0ptr         uintptr
	offsetsOK     bool

	crashStack [crashStackSize / 4]uint32
	crashFn    func(c *Crash)
	crash      Crash
)

// defined in crash_arm.s
func excUndefined()
func excPrefetchAbort()
func excDataAbort()
func excSupervisor()
func callerRegs() (pc, sp, lr, cpsr uint32)
func enterCrash()

// OnCrash sets the function run once after an unrecovered panic or fatal
// runtime error (the runtime ends in goos.Exit with a non-zero code, after
// printing the panic and stack through Printk) or an ARM exception.
//
// fn runs on g0 switched onto a preallocated 256 KiB stack, in System
// mode with IRQs and FIQs masked and the scheduler stopped: it must not
// allocate, block, sleep or start goroutines; it may use the console,
// MsgBuf, Info, time.Now and busy loops, and should end with Halt or
// Reboot (if it returns, the board halts with ExitCrashed). Why: the Exit
// hook runs on g0's 64 KiB stack and the exception entry on whatever
// stack faulted; neither can grow, and the runtime may be dying, so no
// goroutine can be scheduled either. Moving g0's stack bounds to a static
// buffer gives fn a large, known-good stack in every case.
//
// A second failure while fn runs (panic, fatal error or exception) prints
// a message and halts with ExitNested; a third halts with ExitHard
// without running Go code.
func OnCrash(fn func(c *Crash)) {
	crashFn = fn
}

// initCrash installs the exception entries (tamago's keep no registers
// and run on the faulting stack) and the Exit hook.
func initCrash() {
	gp, _ := runtime.GetG()
	g0ptr = uintptr(gp)
	vt := arm.SystemVectorTable()
	vt.Undefined = excUndefined
	vt.PrefetchAbort = excPrefetchAbort
	vt.DataAbort = excDataAbort
	vt.Supervisor = excSupervisor
	imx6ul.ARM.SetVectorTable(vt)
	// reached for the vectors left to tamago (reset, IRQ, FIQ)
	arm.SystemExceptionHandler = tamagoException
	goos.Exit = exitHook
}

func init() {
	checkRuntimeOffsets()
}

func word(addr uintptr) uintptr { return *(*uintptr)(ptr(addr)) }

// checkRuntimeOffsets verifies the g/m offsets from the main goroutine.
func checkRuntimeOffsets() {
	gp, _ := runtime.GetG()
	m := word(uintptr(gp) + gM)
	offsetsOK = m != 0 && word(m+mG0) == g0ptr && word(m+mCurg) == uintptr(gp) &&
		word(g0ptr+gStackHi) > word(g0ptr+gStackLo)
	if !offsetsOK {
		print("imx6ul board: unexpected runtime layout, panic registers will be approximate\n")
	}
}

func exitHook(code int32) {
	if code == 0 {
		Halt(0)
	}
	saveExitRegs(code)
	pendingReason = reasonExit
	enterCrash()
}

func saveExitRegs(code int32) {
	r := &exitSave
	*r = [saveWords]uint32{}
	r[elfcore.ARMOrigR0] = ^uint32(0)
	r[saveCode] = uint32(code)
	pc, sp, lr, cpsr := callerRegs()
	r[elfcore.ARMCPSR] = cpsr
	gp, _ := runtime.GetG()
	if offsetsOK && uintptr(gp) == g0ptr {
		// on the system stack: report the goroutine that was running
		if curg := word(word(g0ptr+gM) + mCurg); curg != 0 {
			r[elfcore.ARMPC] = uint32(word(curg + gSchedPC))
			r[elfcore.ARMSP] = uint32(word(curg + gSchedSP))
			r[elfcore.ARMLR] = uint32(word(curg + gSchedLR))
			r[elfcore.ARMR10] = uint32(curg)
			return
		}
	}
	r[elfcore.ARMPC], r[elfcore.ARMSP], r[elfcore.ARMLR], r[elfcore.ARMR10] = pc, sp, lr, uint32(gp)
}

// tamagoException is the handler for the vectors left to tamago, whose
// entry keeps no registers: only the vector is known.
func tamagoException(off int) {
	excSave = [saveWords]uint32{}
	excSave[saveCode] = uint32(off)
	pendingReason = reasonException
	enterCrash()
}

// crashMain runs on the crash stack (see enterCrash in crash_arm.s).
func crashMain() {
	if crashDepth > 1 {
		nestedFailure()
	}
	src := &exitSave
	crash = Crash{}
	crash.Reason = board.Panic
	if pendingReason == reasonException {
		src = &excSave
		crash.Reason = board.Fault
	}
	for i := 0; i < nregs; i++ {
		crash.Regs[i] = uint64(src[i])
	}
	crash.Code = uint64(src[saveCode])
	crash.Addr = uint64(src[saveAddr])
	crash.FaultStatus = src[saveStatus]

	if crashFn != nil {
		crashFn(&crash)
	} else {
		putStr("\nimx6ul board: crash, no OnCrash function: ")
		describe(pendingReason, src)
	}
	Halt(ExitCrashed)
}

func nestedFailure() {
	putStr("\nimx6ul board: failure inside the crash handler: ")
	if pendingReason == reasonException {
		describe(reasonException, &excSave)
	} else {
		describe(reasonExit, &exitSave)
	}
	putStr("imx6ul board: halting\n")
	Halt(ExitNested)
}

func describe(reason uint32, r *[saveWords]uint32) {
	if reason == reasonException {
		putStr("exception vector ")
	} else {
		putStr("exit code ")
	}
	putHex(r[saveCode])
	putStr(" pc ")
	putHex(r[elfcore.ARMPC])
	putStr(" sp ")
	putHex(r[elfcore.ARMSP])
	putStr("\n")
}

// putStr/putHex print without locks or allocation.
func putStr(s string) {
	for i := 0; i < len(s); i++ {
		printk(s[i])
	}
}

func putHex(v uint32) {
	const digits = "0123456789abcdef"
	putStr("0x")
	for shift := 28; shift >= 0; shift -= 4 {
		printk(digits[v>>uint(shift)&0xf])
	}
}

// exitBlock is the semihosting SYS_EXIT_EXTENDED parameter block.
var exitBlock [2]uint32
