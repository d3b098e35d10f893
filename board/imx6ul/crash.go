//go:build tamago && arm

package imx6ul

import (
	"runtime"
	"runtime/goos"

	"github.com/tamadump/tamadump/board"
	"github.com/tamadump/tamadump/board/console"
	"github.com/tamadump/tamadump/netdump/elfcore"
	"github.com/usbarmory/tamago/arm"
	"github.com/usbarmory/tamago/soc/nxp/imx6ul"
)

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
	crashMsg   [console.MsgBufSize]byte // the console output at the crash: Crash.Msg points here
	faultMsg   [160]byte
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
	if crash.Reason == board.Fault {
		crash.Msg = crash.Message(faultMsg[:0])
	} else {
		n := MsgBuf(crashMsg[:])
		crash.Msg = board.PanicMessage(crashMsg[:n])
	}

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
