//go:build tamago && arm

// Command bootimage is the image booted by boot_test.go: it reports the
// board's layout, time and console, then does what the test types on the
// serial line: crash in one of several ways, or bring the network up and
// crash on command while it serves, dumping memory through the crash-time
// driver afterwards.
package main

import (
	"bytes"
	"net/netip"
	"strconv"
	"sync"
	"time"
	"unsafe"

	"github.com/tamadump/tamadump/board/imx6ul"
	"github.com/tamadump/tamadump/netdump/client"
	"github.com/tamadump/tamadump/netdump/elfcore"
	"github.com/tamadump/tamadump/netdump/wire"
)

var (
	num  [32]byte
	tail [2048]byte
	msg  [256]byte
	mode byte

	eth  *imx6ul.Ethernet
	cl   *client.Client
	core = elfcore.New(3)
	kdh  wire.KernelDumpHeader
)

// Pattern holds what the network mode dumps: the 64 KiB of it that start
// on a page (pattern).
var Pattern [68 << 10]byte

// pattern is the page-aligned part of Pattern that is dumped.
func pattern() []byte {
	off := -uintptr(unsafe.Pointer(&Pattern)) & 4095
	return Pattern[off : off+64<<10]
}

func w(s string) { imx6ul.Console.WriteString(s) }

func dec(v uint64) { imx6ul.Console.Write(strconv.AppendUint(num[:0], v, 10)) }

func hex(v uint64) {
	w("0x")
	imx6ul.Console.Write(strconv.AppendUint(num[:0], v, 16))
}

// l0 is the layout, for the crash handler.
var l0 imx6ul.Layout

func main() {
	l := imx6ul.Info()
	l0 = l
	w("BOOT model=")
	w(map[string]string{"MCIMX6ULL-EVK": "evk", "USB armory Mk II LAN": "usbarmory"}[imx6ul.Model])
	w(" emulated=")
	w(strconv.FormatBool(imx6ul.Emulated()))
	w(" reset_to_hook_us=")
	dec(uint64(imx6ul.HookAt().Microseconds()))
	w(" reset_to_main_us=")
	dec(uint64(imx6ul.SinceReset().Microseconds()))
	w(" ram=")
	hex(l.RAMStart)
	w("+")
	hex(l.RAMSize)
	w(" dma=")
	hex(l.DMAStart)
	w("+")
	hex(l.DMASize)
	w(" dma_tte=")
	hex(uint64(imx6ul.TTE(uint32(l.DMAStart))))
	w(" ram_tte=")
	hex(uint64(imx6ul.TTE(uint32(l.DataStart))))
	w("\n")

	// What a dump holds, each segment read at both ends.
	w("MEMORY")
	var sum byte
	for _, sg := range imx6ul.Memory(memory[:0]) {
		w(" ")
		hex(sg.Phys)
		w("+")
		hex(uint64(len(sg.Data)))
		sum += sg.Data[0] + sg.Data[len(sg.Data)-1]
	}
	w(" mb=")
	dec(imx6ul.MemoryMB())
	w("\n")
	_ = sum

	w("SLEEP-START\n")
	t0 := time.Now()
	time.Sleep(200 * time.Millisecond)
	w("SLEEP-END guest_ms=")
	dec(uint64(time.Since(t0).Milliseconds()))
	w("\n")
	if n := imx6ul.MsgBuf(tail[:]); bytes.Contains(tail[:n], []byte("SLEEP-START\nSLEEP-END")) {
		w("MSGBUF-OK\n")
	}
	l.DMA[0], l.DMA[len(l.DMA)-1] = 0xa5, 0x5a
	if l.DMA[0] == 0xa5 && l.DMA[len(l.DMA)-1] == 0x5a && uint64(uintptr(unsafe.Pointer(&l.DMA[0]))) == l.DMAStart {
		w("DMA-OK\n")
	}

	imx6ul.OnCrash(onCrash)
	w("READY\n")
	mode, _ = imx6ul.Console.ReadByte()
	switch mode {
	case 'p', 'x', 'r':
		boom()
	case 'g':
		go boom()
		select {}
	case 'f':
		var mu sync.Mutex
		mu.Unlock() // fatal error: sync: unlock of unlocked mutex
	case 'u':
		undefined()
	case 'i':
		prefetchAbort()
	case 'a':
		dataAbort(nil)
	case 'n':
		network()
	}
	w("no crash\n")
}

//go:noinline
func boom() {
	panic("boom")
}

//go:noinline
func dataAbort(p *[4]uint32) uint32 {
	return p[1] // a load from 0x4: the first page is unmapped
}

// prefetchAbort calls into the data region, which is never executable.
//
//go:noinline
func prefetchAbort() {
	code := uintptr(unsafe.Pointer(&Pattern)) // a func value points to its code address
	fv := &code
	(*(*func())(unsafe.Pointer(&fv)))()
}

// defined in crash_arm.s
func undefined()

// network brings ENET1 up with imx-enet, prepares a netdump client on the
// crash-time driver, says NET-READY, and panics when 'c' arrives.
func network() {
	fill()
	var err error
	if eth, err = imx6ul.NewEthernet(imx6ul.DMA()); err != nil {
		w("NET-ERROR " + err.Error() + "\n")
		return
	}
	if err := eth.Start(netip.MustParsePrefix("127.0.24.2/24"), netip.Addr{}); err != nil {
		w("NET-ERROR " + err.Error() + "\n")
		return
	}
	cl, err = client.New(eth.NIC, client.Config{
		Client: netip.MustParseAddr("127.0.24.2"), Server: netip.MustParseAddr("127.0.24.1"),
		Console: imx6ul.Console,
	})
	if err != nil {
		w("NET-ERROR " + err.Error() + "\n")
		return
	}
	w("NET-READY " + eth.Desc + " mac=" + macString(eth.MAC) + " pattern=")
	hex(uint64(uintptr(unsafe.Pointer(&pattern()[0]))))
	w("\n")
	for {
		if c, _ := imx6ul.Console.ReadByte(); c == 'c' {
			boom()
		}
	}
}

// fill makes pattern's content the test can check: word i is
// i*2654435761.
func fill() {
	p := pattern()
	for i := 0; i < len(p); i += 4 {
		v := uint32(i/4) * 2654435761
		p[i], p[i+1], p[i+2], p[i+3] = byte(v), byte(v>>8), byte(v>>16), byte(v>>24)
	}
}

// peek reads identity-mapped memory (vet-friendly form).
func peek(addr uintptr) uint32 {
	return **(**uint32)(unsafe.Pointer(&addr))
}

func macString(m [6]byte) string {
	const digits = "0123456789abcdef"
	b := make([]byte, 0, 17)
	for i, x := range m {
		if i > 0 {
			b = append(b, ':')
		}
		b = append(b, digits[x>>4], digits[x&15])
	}
	return string(b)
}

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

func onCrash(c *imx6ul.Crash) {
	n := imx6ul.MsgBuf(tail[:])
	deep(160)
	w("DEEP-OK\n")
	w("CRASH reason=")
	dec(uint64(c.Reason))
	w(" code=")
	hex(c.Code)
	w(" addr=")
	hex(c.Addr)
	w(" fsr=")
	hex(uint64(c.FaultStatus))
	w("\nREGS")
	names := [...]string{"r0", "r1", "r2", "r3", "r4", "r5", "r6", "r7", "r8", "r9", "r10", "r11", "r12", "sp", "lr", "pc", "cpsr", "orig_r0"}
	for i, name := range names {
		w(" " + name + "=")
		hex(c.Regs[i])
	}
	// The word at sp: a Go frame's saved return address.
	if sp := c.Regs[13]; sp >= l0.RAMStart && sp+4 <= l0.RAMStart+l0.RAMSize {
		w(" spword=")
		hex(uint64(peek(uintptr(sp))))
	}
	w("\nMESSAGE ")
	imx6ul.Console.Write(c.Message(msg[:0]))
	w("\nMSGBUF-BEGIN\n")
	imx6ul.Console.Write(tail[:n])
	w("\nMSGBUF-END\n")

	switch mode {
	case 'x':
		panic("failing in the crash handler")
	case 'r':
		imx6ul.Reboot()
	case 'n':
		dump(c)
	}
	imx6ul.Halt(5)
}

var (
	memory   [3]elfcore.Segment
	panicMsg = []byte("boom")
)

// dump takes the Ethernet over from imx-enet and sends the board's memory
// as a core.
func dump(c *imx6ul.Crash) {
	if err := eth.NIC.Reset(); err != nil {
		fail("TAKEOVER-ERROR ", err)
	}
	info := elfcore.Info{Arch: imx6ul.Arch(), Regs: c.Regs, Signal: 6, PID: 1, Panic: panicMsg}
	if err := core.Build(imx6ul.Memory(memory[:0]), &info); err != nil {
		fail("CORE-ERROR ", err)
	}
	kdh = wire.KernelDumpHeader{Version: wire.KDHVersion, ArchitectureVersion: info.Arch.KDHVersion, BlockSize: wire.DataSize}
	wire.SetText(kdh.Magic[:], wire.KDHMagic)
	wire.SetText(kdh.Architecture[:], info.Arch.KDHName)
	wire.SetText(kdh.Hostname[:], "imx6ul-boot")
	wire.SetText(kdh.PanicString[:], "boom")
	if err := cl.Dump(core, &kdh, imx6ul.MemoryMB()); err != nil {
		fail("DUMP-ERROR ", err)
	}
	st := cl.Stats()
	w("DUMP-OK sent=")
	dec(st.Sent)
	w(" bytes=")
	dec(st.Bytes)
	w(" zero=")
	dec(st.ZeroBytes)
	w(" ms=")
	dec(uint64(st.Elapsed.Milliseconds()))
	w("\n")
	imx6ul.Halt(5)
}

func fail(what string, err error) {
	w(what)
	w(err.Error())
	w("\n")
	imx6ul.Halt(7)
}
