// Command guest is booted on the shim by the stockgo tests; argv[1] picks
// the scenario.
package main

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"time"
	"unsafe"

	"github.com/tamadump/tamadump/board/stockgo"
	"github.com/tamadump/tamadump/netdump/elfcore"
)

func main() {
	if len(os.Args) < 2 {
		fmt.Println("usage: guest scenario")
		return
	}
	switch os.Args[1] {
	case "hello":
		fmt.Printf("hello, world %q %s\n", os.Args[2:], os.Getenv("GREETING"))
	case "gc":
		gc()
	case "nil":
		nilDeref()
	case "readline":
		fmt.Println("ready>")
		line, err := bufio.NewReader(os.Stdin).ReadString('\n')
		fmt.Printf("got %q %v\n", line, err)
	case "info":
		info()
	case "crash-main":
		startWatcher("")
		panic("boom")
	case "crash-goroutine":
		startWatcher("")
		go func() {
			var p *int
			*p = 1
		}()
		time.Sleep(10 * time.Second)
	case "crash-watcherfault":
		startWatcher("fault")
		panic("boom")
	case "crash-watcherstuck":
		startWatcher("stuck")
		panic("boom")
	}
}

var sink []byte

var stuckSpins uint64

func gc() {
	runtime.GOMAXPROCS(2)
	stop := make(chan struct{})
	var spins uint64
	go func() { // a tight loop: only a signal can preempt it
		for {
			select {
			case <-stop:
				return
			default:
			}
			for i := 0; i < 1e6; i++ {
				spins++
			}
		}
	}()
	var wg sync.WaitGroup
	results := make(chan int, 16)
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func(g int) {
			defer wg.Done()
			sum := 0
			for i := 0; i < 200; i++ {
				b := make([]byte, 64<<10) // 100 MiB churned in total
				sink = b
				b[i] = byte(g)
				sum += len(b)
				if i%50 == 0 {
					time.Sleep(time.Millisecond)
				}
			}
			results <- sum
		}(g)
	}
	wg.Wait()
	close(results)
	total := 0
	for s := range results {
		total += s
	}
	runtime.GC()
	t0 := time.Now()
	timer := time.NewTimer(30 * time.Millisecond)
	<-timer.C
	slept := time.Since(t0)
	close(stop)
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	fmt.Printf("gc ok total=%d numgc=%d slept=%v\n", total, ms.NumGC, slept >= 30*time.Millisecond)
}

func nilDeref() {
	defer func() { fmt.Println("recovered:", recover()) }()
	var p *int
	fmt.Println(*p)
}

func info() {
	in, err := stockgo.ReadInfo()
	if err != nil {
		fmt.Println("info error:", err)
		return
	}
	cmd := string(in.Cmdline[:bytes.IndexByte(in.Cmdline[:], 0)])
	fmt.Printf("cmdline %q\n", cmd)
	fmt.Printf("nram %d dma %#x+%#x tsc %d shim %#x+%#x\n", in.NRAM, in.DMABase, in.DMALen, in.TSCHz, in.ShimBase, in.ShimLen)
	var problems []string
	inRAM := func(a, n uint64) bool {
		for i := uint64(0); i < in.NRAM; i++ {
			if a >= in.RAMBase[i] && a+n <= in.RAMBase[i]+in.RAMLen[i] {
				return true
			}
		}
		return false
	}
	if !inRAM(0x400000, 0x1000) {
		problems = append(problems, "RAM does not cover the Go load address")
	}
	if in.DMALen == 0 || in.DMABase%(2<<20) != 0 || !inRAM(in.DMABase, in.DMALen) {
		problems = append(problems, "DMA region not inside RAM")
	}
	n, _ := stockgo.MemMap(nil)
	runs := make([]stockgo.Run, n+16)
	n2, _ := stockgo.MemMap(runs)
	runs = runs[:min(n2, len(runs))]
	var covered, mapped uint64
	next := uint64(0)
	ri := uint64(0)
	for _, r := range runs {
		if r.PAddr < next {
			problems = append(problems, "runs overlap or not ascending")
		}
		next = r.PAddr + r.Len
		covered += r.Len
		if r.VAddr != r.PAddr {
			mapped += r.Len
		}
		for ri < in.NRAM && r.PAddr >= in.RAMBase[ri]+in.RAMLen[ri] {
			ri++
		}
		if ri == in.NRAM || !inRAM(r.PAddr, r.Len) {
			problems = append(problems, fmt.Sprintf("run %#x+%#x outside RAM", r.PAddr, r.Len))
		}
	}
	var ram uint64
	for i := uint64(0); i < in.NRAM; i++ {
		ram += in.RAMLen[i]
	}
	if covered != ram {
		problems = append(problems, fmt.Sprintf("runs cover %#x bytes, RAM is %#x", covered, ram))
	}
	// A heap page must show up at its heap address.
	heap := make([]byte, 1<<20)
	heap[0] = 1
	addr := uint64(uintptr(unsafe.Pointer(&heap[0])))
	runs = make([]stockgo.Run, n+64)
	n3, _ := stockgo.MemMap(runs)
	found := false
	for _, r := range runs[:min(n3, len(runs))] {
		if addr >= r.VAddr && addr < r.VAddr+r.Len && r.VAddr != r.PAddr {
			found = true
		}
	}
	if !found {
		problems = append(problems, "heap page not in MEMMAP")
	}
	fmt.Println("marker-for-msgbuf")
	buf := make([]byte, 100)
	got := stockgo.MsgBuf(buf)
	if !bytes.Contains(buf[:got], []byte("marker-for-msgbuf\n")) {
		problems = append(problems, fmt.Sprintf("msgbuf: %q", buf[:got]))
	}
	problems = append(problems, checkNanotime()...)
	fmt.Printf("runs %d mapped %#x\n", len(runs[:min(n3, len(runs))]), mapped)
	if len(problems) > 0 {
		fmt.Println("info problems:", strings.Join(problems, "; "))
		return
	}
	fmt.Println("info ok")
}

// checkNanotime compares the board's TSC clock with the runtime's (a
// system call into the shim) over a sleep, and checks it never goes back.
func checkNanotime() []string {
	m, err := stockgo.New()
	if err != nil {
		return []string{err.Error()}
	}
	var problems []string
	t0, w0 := m.Nanotime(), time.Now()
	prev := t0
	for range 10000 {
		if t := m.Nanotime(); t < prev {
			problems = append(problems, fmt.Sprintf("Nanotime went back from %d to %d", prev, t))
			break
		} else {
			prev = t
		}
	}
	time.Sleep(200 * time.Millisecond)
	got, want := time.Duration(m.Nanotime()-t0), time.Since(w0)
	if got < want*95/100 || got > want*105/100 {
		problems = append(problems, fmt.Sprintf("Nanotime advanced %v while the runtime's clock advanced %v", got, want))
	}
	fmt.Printf("nanotime %v over the runtime's %v\n", got, want)
	return problems
}

var (
	crash   stockgo.Crash
	msg     [64 << 10]byte
	line    [256]byte
	started = make(chan struct{})
)

// After the crash the other threads are frozen, so the watcher must not
// allocate or block: it writes with raw system calls from fixed buffers.
func raw(b []byte) {
	syscall.RawSyscall(syscall.SYS_WRITE, 1, uintptr(unsafe.Pointer(&b[0])), uintptr(len(b)))
}

func hex(b []byte, v uint64) []byte {
	b = append(b, "0x"...)
	for s := 60; s >= 0; s -= 4 {
		b = append(b, "0123456789abcdef"[v>>uint(s)&15])
	}
	return b
}

// startWatcher starts the crash watcher; after says what it does once
// woken: "" reports and halts, "fault" faults, "stuck" spins without a
// system call, as a watcher that never got back into the program.
func startWatcher(after string) {
	runtime.GOMAXPROCS(2)
	go func() {
		runtime.LockOSThread()
		close(started)
		if after == "stuck" {
			// CRASHWAIT by hand, never reporting back: as a watcher
			// stuck in the runtime on its way out of the system call.
			syscall.Syscall(0x7003, uintptr(unsafe.Pointer(&crash)), 0, 0)
			for {
				stuckSpins++
			}
		}
		err := stockgo.WaitCrash(&crash)
		if err != nil {
			raw([]byte("waitcrash error\n"))
			stockgo.Halt(3)
		}
		n := stockgo.MsgBuf(msg[:])
		name := "?"
		if f := runtime.FuncForPC(uintptr(crash.Regs[elfcore.RIP])); f != nil {
			name = f.Name()
		}
		b := append(line[:0], "WATCHER reason="...)
		b = hex(b, crash.Reason)
		b = append(b, " code="...)
		b = hex(b, crash.Code)
		b = append(b, " rip="...)
		b = hex(b, crash.Regs[elfcore.RIP])
		b = append(b, " func="...)
		b = append(b, name...)
		b = append(b, '\n')
		raw(b)
		if bytes.Contains(msg[:n], []byte("panic: boom")) {
			raw([]byte("MSGBUF has the panic\n"))
		}
		if bytes.Contains(msg[:n], []byte("nil pointer dereference")) {
			raw([]byte("MSGBUF has the nil dereference\n"))
		}
		if after == "fault" {
			var p *int
			*p = 2
		}
		stockgo.Halt(7)
	}()
	<-started
	time.Sleep(50 * time.Millisecond) // let the watcher reach CRASHWAIT
}
