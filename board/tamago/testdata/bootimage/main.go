//go:build tamago && amd64

// Command bootimage is the image booted by boot_test.go: it checks time and
// the console ring, then crashes the way the test asks over the serial line.
package main

import (
	"bytes"
	"strconv"
	"time"
	"unsafe"

	board "github.com/tamadump/tamadump/board/tamago"
	"github.com/tamadump/tamadump/netdump/elfcore"
)

var (
	num  [32]byte
	tail [2048]byte
	mode byte
)

func w(s string) { board.Console.WriteString(s) }

func dec(v uint64) { board.Console.Write(strconv.AppendUint(num[:0], v, 10)) }

func hex(v uint64) {
	w("0x")
	board.Console.Write(strconv.AppendUint(num[:0], v, 16))
}

func main() {
	hz, src := board.TSCHz()
	l := board.Info()
	w("BOOT tsc_hz=")
	dec(hz)
	w(" source=" + src + " reset_to_hook_us=")
	dec(uint64(board.HookAt().Microseconds()))
	w(" hook_to_main_us=")
	dec(uint64(board.SinceHook().Microseconds()))
	w(" ram=")
	hex(l.RAMStart)
	w("+")
	hex(l.RAMSize)
	w(" dma=")
	hex(l.DMAStart)
	w("+")
	hex(l.DMASize)
	w("\n")

	w("SLEEP-START\n")
	t0 := time.Now()
	time.Sleep(200 * time.Millisecond)
	w("SLEEP-END guest_ms=")
	dec(uint64(time.Since(t0).Milliseconds()))
	w("\n")

	if n := board.MsgBuf(tail[:]); bytes.Contains(tail[:n], []byte("SLEEP-START\nSLEEP-END")) {
		w("MSGBUF-OK\n")
	}

	l.DMA[0], l.DMA[len(l.DMA)-1] = 0xa5, 0x5a
	if l.DMA[0] == 0xa5 && l.DMA[len(l.DMA)-1] == 0x5a && uint64(uintptr(unsafe.Pointer(&l.DMA[0]))) == l.DMAStart {
		w("DMA-OK\n")
	}

	board.OnCrash(onCrash)
	w("READY\n")
	mode, _ = board.Console.ReadByte()

	switch mode {
	case 'p', 'x':
		boom()
	case 'g':
		go boom()
		select {}
	case 'n':
		nilDeref(nil)
	case 'u':
		ud2()
	case 'i':
		int3()
	}
	w("no crash\n")
}

//go:noinline
func boom() {
	panic("boom")
}

//go:noinline
func nilDeref(p *int) int {
	return *p + 1
}

// defined in crash_amd64.s
func ud2()
func int3()

// deep uses about n KiB of stack.
//
//go:noinline
func deep(n int) byte {
	var buf [1024]byte
	buf[n%len(buf)] = byte(n)
	if n == 0 {
		return buf[0]
	}
	return deep(n-1) + buf[(n*7)%len(buf)]
}

// peek reads identity-mapped memory (vet-friendly form).
func peek(addr uint64) uint64 {
	a := uintptr(addr)
	return **(**uint64)(unsafe.Pointer(&a))
}

func onCrash(c *board.Crash) {
	n := board.MsgBuf(tail[:])

	deep(160)
	w("DEEP-OK\n")

	w("CRASH reason=")
	dec(uint64(c.Reason))
	w(" code=")
	hex(c.Code)
	w(" err=")
	hex(c.ErrorCode)
	w(" cr2=")
	hex(c.Addr)
	w("\nREGS")
	names := [...]string{"r15", "r14", "r13", "r12", "rbp", "rbx", "r11", "r10", "r9", "r8", "rax", "rcx", "rdx", "rsi", "rdi", "orig_rax", "rip", "cs", "eflags", "rsp", "ss", "fs_base", "gs_base", "ds", "es", "fs", "gs"}
	for i, r := range c.Regs {
		w(" " + names[i] + "=")
		hex(r)
	}

	// frame-pointer chain, symbolised by the test
	l := board.Info()
	w("\nFRAMES ")
	hex(c.Regs[elfcore.RIP])
	bp := c.Regs[elfcore.RBP]
	for i := 0; i < 32 && bp >= l.RAMStart && bp+16 <= l.RAMStart+l.RAMSize && bp%8 == 0; i++ {
		w(" ")
		hex(peek(bp + 8))
		bp = peek(bp)
	}
	w("\nMSGBUF-BEGIN\n")
	board.Console.Write(tail[:n])
	w("\nMSGBUF-END\n")

	if mode == 'x' {
		panic("failing in the crash handler")
	}
	board.Halt(5)
}
