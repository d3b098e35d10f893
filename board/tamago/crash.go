//go:build tamago && amd64

package tamago

import (
	"encoding/binary"
	"runtime"
	"runtime/goos"
	"unsafe"

	"github.com/usbarmory/tamago/amd64"
)

// Crash reasons.
const (
	ReasonExit      = 1 // goos.Exit with a non-zero code (panic, fatal error)
	ReasonException = 2 // CPU exception
)

// Indexes into Crash.Regs (Linux user_regs_struct order, as in ELF core
// NT_PRSTATUS on amd64).
const (
	RegR15 = iota
	RegR14
	RegR13
	RegR12
	RegRBP
	RegRBX
	RegR11
	RegR10
	RegR9
	RegR8
	RegRAX
	RegRCX
	RegRDX
	RegRSI
	RegRDI
	RegOrigRAX
	RegRIP
	RegCS
	RegEFLAGS
	RegRSP
	RegSS
	RegFSBase
	RegGSBase
	RegDS
	RegES
	RegFS
	RegGS
	NumRegs
)

// Crash describes the failure handed to the OnCrash function.
type Crash struct {
	Reason int    // ReasonExit or ReasonException
	Code   uint64 // exit code or exception vector
	// Regs at the point of failure, see OnCrash.
	Regs [NumRegs]uint64
	// ErrorCode is the CPU error code (exceptions 8, 10-14, 17, 21, 29, 30).
	ErrorCode uint64
	// CR2 is the faulting linear address of a page fault (vector 14); a
	// nil pointer dereference is a page fault at a small address.
	CR2 uint64
}

// runtime g/m field offsets (tamago-go 1.26.0, amd64; checked at init by
// checkRuntimeOffsets).
const (
	gStackLo     = 0
	gStackHi     = 8
	gStackGuard0 = 16
	gStackGuard1 = 24
	gM           = 48
	gSchedSP     = 56
	gSchedPC     = 64
	gSchedBP     = 96
	mG0          = 0
	mCurg        = 136
)

const (
	crashStackSize  = 256 << 10
	crashStackGuard = 2048
	maxCrashDepth   = 2 // the crash itself, one failure inside the handler

	// save area layout: NumRegs registers, then these
	saveCode  = NumRegs
	saveErr   = NumRegs + 1
	saveCR2   = NumRegs + 2
	saveWords = NumRegs + 3
)

var (
	// written by excCommon (board_amd64.s) and by the Exit hook
	excSave  [saveWords]uint64
	exitSave [saveWords]uint64

	pendingReason uint64
	crashDepth    uint64 // incremented by enterCrash
	g0ptr         uintptr
	offsetsOK     bool

	crashStack [crashStackSize / 8]uint64
	crashFn    func(c *Crash)
	crash      Crash
)

// defined in board_amd64.s
func idtBase() uintptr
func excStub(vector int) uintptr
func callerRegs() (pc, sp, bp, flags uint64)
func segRegs() (cs, ss, ds, es, fs, gs uint64)
func enterCrash()

// OnCrash sets the function run once after an unrecovered panic or fatal
// runtime error (the runtime ends in goos.Exit with a non-zero code, after
// printing the panic and stack through Printk) or a CPU exception.
//
// fn runs on g0 (the system goroutine) switched onto a preallocated 256 KiB
// stack, with interrupts disabled and the scheduler stopped: it must not
// allocate, block, sleep or start goroutines; it may use the console,
// MsgBuf, Info, time.Now and busy loops, and should end with Halt or
// Reboot (if it returns, the board halts with ExitCrashed). Why: the Exit
// hook runs on g0's 64 KiB stack and the exception entry on whatever stack
// faulted; neither can grow (morestack on g0 aborts), and the runtime is
// dying (m.mallocing and m.dying set), so no goroutine can be scheduled
// either. Switching g0's stack bounds to a static buffer gives fn a large,
// known-good stack in every case, without the scheduler.
//
// c.Regs: for an exception, all registers of the interrupted context (the
// faulting instruction, goroutine or not). For a panic, the state of the
// panicking goroutine as saved when it switched to the system stack to die
// (rip = runtime.systemstack_switch, rsp and rbp in its own stack, r14 = its
// g), exactly what a debugger uses for a parked goroutine: its frame-pointer
// chain leads through runtime.fatalpanic and runtime.gopanic to the function
// that panicked. Other general registers are not preserved by Go calls and
// are 0.
//
// A second failure while fn runs (panic, fatal error or exception) prints a
// message and halts with ExitNested; a third halts with ExitHard without
// running Go code.
func OnCrash(fn func(c *Crash)) {
	crashFn = fn
}

// installExceptionHandlers points IDT vectors 0-31 (but NMI, used by tamago
// for IPIs) to our entry stubs, which save every register, unlike tamago's
// handleException (which clobbers them and reports no vector-specific
// state).
func installExceptionHandlers() {
	base := idtBase()
	for v := 0; v < 32; v++ {
		if v == 2 {
			continue
		}
		addr := uint64(excStub(v))
		gate := unsafe.Slice((*byte)(physPtr(base+uintptr(v)*16)), 16)
		binary.LittleEndian.PutUint16(gate[0:], uint16(addr))
		binary.LittleEndian.PutUint16(gate[2:], 1<<3) // kernel code segment
		gate[4] = 0                                   // no IST
		gate[5] = amd64.InterruptGate                 // P, DPL 0, IF cleared
		binary.LittleEndian.PutUint16(gate[6:], uint16(addr>>16))
		binary.LittleEndian.PutUint32(gate[8:], uint32(addr>>32))
		binary.LittleEndian.PutUint32(gate[12:], 0)
	}
}

func initCrash() {
	gp, _ := runtime.GetG()
	g0ptr = uintptr(gp)
	goos.Exit = exitHook
	// reached only if someone reinstalls tamago's exception vectors
	amd64.SystemExceptionHandler = tamagoException
}

func word(addr uintptr) uintptr {
	return *(*uintptr)(physPtr(addr))
}

// checkRuntimeOffsets verifies the g/m offsets from the main goroutine.
func checkRuntimeOffsets() {
	gp, _ := runtime.GetG()
	m := word(uintptr(gp) + gM)
	offsetsOK = m != 0 && word(m+mG0) == g0ptr && word(m+mCurg) == uintptr(gp) &&
		word(g0ptr+gStackHi) > word(g0ptr+gStackLo)
	if !offsetsOK {
		print("tamago board: unexpected runtime layout, panic registers will be approximate\n")
	}
}

func exitHook(code int32) {
	if code == 0 {
		Halt(0)
	}
	saveExitRegs(code)
	pendingReason = ReasonExit
	enterCrash()
}

func saveExitRegs(code int32) {
	r := &exitSave
	*r = [saveWords]uint64{}
	r[RegOrigRAX] = ^uint64(0)
	r[saveCode] = uint64(code)

	pc, sp, bp, flags := callerRegs()
	r[RegEFLAGS] = flags
	r[RegCS], r[RegSS], r[RegDS], r[RegES], r[RegFS], r[RegGS] = segRegs()
	r[RegFSBase] = rdmsr(0xc0000100)
	r[RegGSBase] = rdmsr(0xc0000101)

	gp, _ := runtime.GetG()
	if offsetsOK && uintptr(gp) == g0ptr {
		// on the system stack: report the goroutine that was running
		if curg := word(word(g0ptr+gM) + mCurg); curg != 0 {
			r[RegRIP] = uint64(word(curg + gSchedPC))
			r[RegRSP] = uint64(word(curg + gSchedSP))
			r[RegRBP] = uint64(word(curg + gSchedBP))
			r[RegR14] = uint64(curg)
			return
		}
	}
	r[RegRIP], r[RegRSP], r[RegRBP], r[RegR14] = pc, sp, bp, uint64(gp)
}

// tamagoException is the fallback for tamago's own exception entry, which
// preserves no registers nor the vector.
func tamagoException() {
	excSave = [saveWords]uint64{}
	excSave[saveCode] = ^uint64(0)
	pendingReason = ReasonException
	enterCrash()
}

// crashMain runs on the crash stack (see enterCrash in board_amd64.s).
func crashMain() {
	if crashDepth > 1 {
		nestedFailure()
	}

	src := &exitSave
	if pendingReason == ReasonException {
		src = &excSave
	}
	crash.Reason = int(pendingReason)
	copy(crash.Regs[:], src[:NumRegs])
	crash.Code = src[saveCode]
	crash.ErrorCode = src[saveErr]
	crash.CR2 = src[saveCR2]

	if crashFn != nil {
		crashFn(&crash)
	} else {
		putStr("\ntamago board: crash, no OnCrash function: ")
		describe(crash.Reason, crash.Code, crash.Regs[RegRIP], crash.Regs[RegRSP])
	}
	Halt(ExitCrashed)
}

func nestedFailure() {
	putStr("\ntamago board: failure inside the crash handler: ")
	if pendingReason == ReasonException {
		describe(ReasonException, excSave[saveCode], excSave[RegRIP], excSave[RegRSP])
	} else {
		describe(ReasonExit, exitSave[saveCode], exitSave[RegRIP], exitSave[RegRSP])
	}
	putStr("tamago board: halting\n")
	Halt(ExitNested)
}

func describe(reason int, code, rip, rsp uint64) {
	if reason == ReasonException {
		putStr("exception vector ")
	} else {
		putStr("exit code ")
	}
	putHex(code)
	putStr(" rip ")
	putHex(rip)
	putStr(" rsp ")
	putHex(rsp)
	putStr("\n")
}

// putStr/putHex print without locks or allocation.
func putStr(s string) {
	for i := 0; i < len(s); i++ {
		printk(s[i])
	}
}

func putHex(v uint64) {
	const digits = "0123456789abcdef"
	putStr("0x")
	started := false
	for shift := 60; shift >= 0; shift -= 4 {
		d := (v >> uint(shift)) & 0xf
		if d != 0 || started || shift == 0 {
			printk(digits[d])
			started = true
		}
	}
}
