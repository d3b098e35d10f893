//go:build tamago && amd64

package tamago

import (
	"encoding/binary"
	"runtime"
	"runtime/goos"
	"unsafe"

	"github.com/tamadump/tamadump/board"
	"github.com/tamadump/tamadump/board/amd64"
	"github.com/tamadump/tamadump/netdump/elfcore"
	tamd64 "github.com/usbarmory/tamago/amd64"
)

// Why the crash path was entered (pendingReason).
const (
	reasonExit      = 1 // goos.Exit with a non-zero code (panic, fatal error)
	reasonException = 2 // CPU exception
)

// NumRegs is how many registers the board saves: all of elfcore's amd64
// table (excCommon in board_amd64.s stores them in that order).
const NumRegs = len(elfcore.Regs{})

// Crash is the failure handed to the OnCrash function: board.Crash (Reason
// board.Panic with Code the exit code, or board.Fault with Code the
// exception vector and Addr CR2, the faulting linear address of a page
// fault: a nil pointer dereference is a page fault at a small address;
// Regs, see OnCrash; Msg, the panic message) and the CPU's error code.
type Crash struct {
	board.Crash
	// ErrorCode is the CPU error code (exceptions 8, 10-14, 17, 21, 29, 30).
	ErrorCode uint64
}

// runtime g/m field offsets (tamago-go 1.26.0, amd64; checked at init by
// checkRuntimeOffsets). The g stack bounds are constants for the crash
// stack switch in board_amd64.s.
const (
	gStackLo     = 0
	gStackHi     = 8
	gStackGuard0 = 16
	gStackGuard1 = 24
)

var runtimeLayout = amd64.Layout{GM: 48, GSchedSP: 56, GSchedPC: 64, GSchedBP: 96, MG0: 0, MCurg: 136}

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
	crashMsg   [MsgBufSize]byte // the console output at the crash: Crash.Msg points here
	faultMsg   [128]byte
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
		gate[5] = tamd64.InterruptGate                // P, DPL 0, IF cleared
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
	tamd64.SystemExceptionHandler = tamagoException
}

func word(addr uintptr) uintptr {
	return *(*uintptr)(physPtr(addr))
}

// checkRuntimeOffsets verifies the g/m offsets from the main goroutine.
func checkRuntimeOffsets() {
	l := &runtimeLayout
	gp, _ := runtime.GetG()
	m := word(uintptr(gp) + l.GM)
	offsetsOK = m != 0 && word(m+l.MG0) == g0ptr && word(m+l.MCurg) == uintptr(gp) &&
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
	pendingReason = reasonExit
	enterCrash()
}

func saveExitRegs(code int32) {
	r := &exitSave
	*r = [saveWords]uint64{}
	r[elfcore.OrigRAX] = ^uint64(0)
	r[saveCode] = uint64(code)

	pc, sp, bp, flags := callerRegs()
	r[elfcore.EFLAGS] = flags
	r[elfcore.CS], r[elfcore.SS], r[elfcore.DS], r[elfcore.ES], r[elfcore.FS], r[elfcore.GS] = segRegs()
	r[elfcore.FSBase] = rdmsr(0xc0000100)
	r[elfcore.GSBase] = rdmsr(0xc0000101)
	gp, _ := runtime.GetG()
	r[elfcore.RIP], r[elfcore.RSP], r[elfcore.RBP], r[elfcore.R14] = pc, sp, bp, uint64(uintptr(gp))
}

// readWord reads RAM for amd64.PanickingGoroutine.
func readWord(addr uintptr) (uintptr, bool) {
	l := Info()
	if uint64(addr) < l.RAMStart || uint64(addr)+8 > l.RAMStart+l.RAMSize {
		return 0, false
	}
	return word(addr), true
}

// tamagoException is the fallback for tamago's own exception entry, which
// preserves no registers nor the vector.
func tamagoException() {
	excSave = [saveWords]uint64{}
	excSave[saveCode] = ^uint64(0)
	pendingReason = reasonException
	enterCrash()
}

// crashMain runs on the crash stack (see enterCrash in board_amd64.s).
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
	copy(crash.Regs[:], src[:NumRegs])
	crash.Code = src[saveCode]
	crash.ErrorCode = src[saveErr]
	crash.Addr = src[saveCR2]
	if crash.Reason == board.Fault {
		crash.Msg = amd64.FaultMessage(faultMsg[:0], crash.Code, crash.Regs[elfcore.RIP], crash.Addr)
	} else {
		// The Exit hook ran on g0: report the goroutine that panicked.
		if offsetsOK {
			amd64.PanickingGoroutine(&crash.Regs, &runtimeLayout, readWord)
		}
		n := MsgBuf(crashMsg[:])
		crash.Msg = board.PanicMessage(crashMsg[:n])
	}

	if crashFn != nil {
		crashFn(&crash)
	} else {
		putStr("\ntamago board: crash, no OnCrash function: ")
		describe(uint64(pendingReason), crash.Code, crash.Regs[elfcore.RIP], crash.Regs[elfcore.RSP])
	}
	Halt(ExitCrashed)
}

func nestedFailure() {
	putStr("\ntamago board: failure inside the crash handler: ")
	if pendingReason == reasonException {
		describe(reasonException, excSave[saveCode], excSave[elfcore.RIP], excSave[elfcore.RSP])
	} else {
		describe(reasonExit, exitSave[saveCode], exitSave[elfcore.RIP], exitSave[elfcore.RSP])
	}
	putStr("tamago board: halting\n")
	Halt(ExitNested)
}

func describe(reason, code, rip, rsp uint64) {
	if reason == reasonException {
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
