// Package stockgo holds the Go side of the tamadump shim (see package
// shim): wrappers of its custom system calls, for a stock Go program that
// runs bare-metal on it.
package stockgo

import (
	"errors"
	"runtime"
	"syscall"
	"time"
	"unsafe"

	"github.com/tamadump/tamadump/netdump/elfcore"
)

// System call numbers of the shim.
const (
	sysInfo      = 0x7000
	sysMemMap    = 0x7001
	sysMsgBuf    = 0x7002
	sysCrashWait = 0x7003
	sysHalt      = 0x7004
	sysReboot    = 0x7005
	sysCrashBack = 0x7006
)

// InfoMagic is Info.Magic ("tamashm1").
const InfoMagic = 0x74616d6173686d31

// Info describes the machine, as the shim found it.
type Info struct {
	Magic    uint64
	RAMBase  [8]uint64 // RAM ranges (below 4 GiB), ascending
	RAMLen   [8]uint64
	NRAM     uint64
	DMABase  uint64 // identity-mapped, user-accessible, never given to mmap
	DMALen   uint64
	TSCHz    uint64
	BootTSC  uint64 // TSC when the shim started
	ShimBase uint64
	ShimLen  uint64
	Cmdline  [256]byte // the kernel command line, NUL-terminated
}

// Run is a physically contiguous piece of RAM mapped at contiguous virtual
// addresses. VAddr == PAddr for frames that are not mapped into user space
// elsewhere (the shim, the Go image, the DMA region, free memory).
type Run struct {
	PAddr, VAddr, Len uint64
}

// Crash reasons.
const (
	CrashExit   = 1 // exit_group; Code is the exit status
	CrashFault  = 2 // unhandled fault; Code is the vector, Addr CR2
	CrashSignal = 3 // fatal signal with the default action; Code is the signal
)

// Crash describes how the program died, as the shim writes it. Regs is in
// the order of Linux's user_regs_struct, elfcore's amd64 order.
type Crash struct {
	Reason uint64
	Code   uint64
	Addr   uint64
	TID    uint64
	Regs   elfcore.Regs
}

// ErrNotShim is returned by ReadInfo when the program does not run on the shim.
var ErrNotShim = errors.New("stockgo: not running on the tamadump shim")

// ReadInfo asks the shim for the machine description.
func ReadInfo() (Info, error) {
	var in Info
	_, _, e := syscall.RawSyscall(sysInfo, uintptr(unsafe.Pointer(&in)), 0, 0)
	if e != 0 || in.Magic != InfoMagic {
		return Info{}, ErrNotShim
	}
	return in, nil
}

// MemMap fills dst with the RAM map and returns the total number of runs,
// which may exceed len(dst).
func MemMap(dst []Run) (int, error) {
	var p unsafe.Pointer
	if len(dst) > 0 {
		p = unsafe.Pointer(&dst[0])
	}
	n, _, e := syscall.RawSyscall(sysMemMap, uintptr(p), uintptr(len(dst)), 0)
	if e != 0 {
		return 0, ErrNotShim
	}
	return int(n), nil
}

// MsgBuf copies the last len(dst) bytes (at most 64 KiB) written to the
// console, oldest first, and returns how many it copied.
func MsgBuf(dst []byte) int {
	if len(dst) == 0 {
		return 0
	}
	n, _, e := syscall.RawSyscall(sysMsgBuf, uintptr(unsafe.Pointer(&dst[0])), uintptr(len(dst)), 0)
	if e != 0 {
		return 0
	}
	return int(n)
}

// WaitCrash blocks until another thread of the program exits or dies, then
// fills c; by then every other thread is stopped for good. Call it from a
// goroutine locked to its thread (runtime.LockOSThread), from the start: a
// crash before the first call ends the machine. Only one thread may wait.
// It does not allocate.
//
// It waits in an ordinary blocking system call (syscall.Syscall), so the
// runtime never needs to preempt it: a goroutine that a Go fatal panic
// finds preempted, or on its way back into the scheduler, never runs
// again. The wait is cut into short slices (waitSlice) so that the
// runtime's monitor does not hand the P to another thread meanwhile:
// coming back with its own P needs no lock, while getting another one
// needs the scheduler's, which a frozen thread may hold. Run with
// GOMAXPROCS of at least 2. The shim also starts the program with
// GODEBUG=dontfreezetheworld=1, which keeps the panic from blocking the
// return from the system call; and it halts with a message if the watcher
// does not report back (CRASHBACK) within 5 s of being woken.
func WaitCrash(c *Crash) error {
	for {
		_, _, e := syscall.Syscall(sysCrashWait, uintptr(unsafe.Pointer(c)), uintptr(waitSlice), 0)
		switch e {
		case 0:
			// Back through the runtime's return from the system call:
			// tell the shim, which otherwise halts after a while.
			syscall.RawSyscall(sysCrashBack, 0, 0, 0)
			return nil
		case syscall.EAGAIN:
		case syscall.EINTR:
			runtime.Gosched()
		default:
			return e
		}
	}
}

// waitSlice is shorter than the 10 ms after which the runtime's monitor
// takes the P of a thread in a system call even when others are idle.
const waitSlice = 5 * time.Millisecond

// Halt ends the machine: QEMU exits with status (code<<1)|1.
func Halt(code int) {
	syscall.RawSyscall(sysHalt, uintptr(code), 0, 0)
}

// Reboot resets the machine (QEMU exits when run with -no-reboot).
func Reboot() {
	syscall.RawSyscall(sysReboot, 0, 0, 0)
}
