//go:build !tamago

package imx6ul_test

import (
	"bytes"
	"context"
	"debug/elf"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tamadump/tamadump/board/imx6ul"
	"github.com/tamadump/tamadump/netdump/server"
	"github.com/tamadump/tamadump/qemu"
	"github.com/tamadump/tamadump/qemu/gobuild"
	"github.com/tamadump/tamadump/qemu/usernet"
)

// target is a board target and how QEMU's mcimx6ul-evk stands in for it.
type target struct {
	imx6ul.Target
	enet   string                       // the ENET it uses
	serial []string                     // the console on stdio
	nic    func(netdev string) []string // its ENET on netdev
}

var (
	evk = target{Target: imx6ul.Targets[0], enet: "ENET1",
		serial: []string{"-serial", "stdio", "-serial", "null"},
		nic:    func(nd string) []string { return []string{"-net", "nic,netdev=" + nd + ",macaddr=52:54:00:12:34:56"} }}
	usbarmory = target{Target: imx6ul.Targets[1], enet: "ENET2",
		serial: []string{"-serial", "null", "-serial", "stdio"},
		nic: func(nd string) []string {
			return []string{"-net", "nic", "-net", "nic,netdev=" + nd + ",macaddr=52:54:00:12:34:56"}
		}}
)

var (
	buildMu sync.Mutex
	images  = map[string]string{}
	tmp     string
)

// buildImage builds testdata/bootimage for tg once for all tests.
func buildImage(t *testing.T, tg target) string {
	t.Helper()
	gocmd, err := gobuild.Toolchain()
	if err != nil {
		t.Skipf("SKIP: %v", err)
	}
	buildMu.Lock()
	defer buildMu.Unlock()
	if img, ok := images[tg.Name]; ok {
		if img == "" {
			t.Fatal("the image did not build")
		}
		return img
	}
	images[tg.Name] = ""
	if tmp == "" {
		if tmp, err = os.MkdirTemp("", "imx6ul-boot-"); err != nil {
			t.Fatal(err)
		}
	}
	img := filepath.Join(tmp, "bootimage-"+tg.Name+".elf")
	if err := imx6ul.Build(gocmd, ".", "./testdata/bootimage", img, tg.Target, ""); err != nil {
		t.Fatal(err)
	}
	images[tg.Name] = img
	return img
}

func TestMain(m *testing.M) {
	code := m.Run()
	if tmp != "" {
		os.RemoveAll(tmp)
	}
	os.Exit(code)
}

// run is one boot.
type run struct {
	out    string
	status int
	ready  time.Duration // host time from QEMU start to READY
	sleep  time.Duration // host time between SLEEP-START and SLEEP-END
}

// boot runs the image and types mode when it is READY; net adds QEMU
// arguments for the network (else the ENETs have no peer); onLine sees
// every line.
func boot(t *testing.T, tg target, img string, mode byte, net []string, onLine func(string, io.Writer)) run {
	t.Helper()
	var r run
	var sleepStart time.Time
	start := time.Now()
	args := append(imx6ul.QEMUArgs(img, imx6ul.MinRAMMiB+6), tg.serial...)
	if net == nil {
		net = []string{"-net", "none"}
	}
	args = append(args, net...)
	r.out, r.status = qemu.RunConsole(t, 90*time.Second, args, func(line string, in io.Writer) {
		now := time.Now()
		// the crash handler repeats these lines from the message buffer
		switch {
		case strings.HasPrefix(line, "SLEEP-START") && sleepStart.IsZero():
			sleepStart = now
		case strings.HasPrefix(line, "SLEEP-END") && r.sleep == 0:
			r.sleep = now.Sub(sleepStart)
		case strings.HasPrefix(line, "READY") && r.ready == 0:
			r.ready = now.Sub(start)
			in.Write([]byte{mode, '\n'})
		}
		if onLine != nil {
			onLine(line, in)
		}
	})
	return r
}

// symbols maps addresses to the image's function and object names.
type symbols []elf.Symbol

func readSymbols(t *testing.T, img string) symbols {
	f, err := elf.Open(img)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	all, err := f.Symbols()
	if err != nil {
		t.Fatal(err)
	}
	var s symbols
	for _, sym := range all {
		if sym.Size > 0 {
			s = append(s, sym)
		}
	}
	sort.Slice(s, func(i, j int) bool { return s[i].Value < s[j].Value })
	return s
}

func (s symbols) name(a uint64) string {
	i := sort.Search(len(s), func(i int) bool { return s[i].Value > a }) - 1
	if i >= 0 && a < s[i].Value+s[i].Size {
		return s[i].Name
	}
	return "?"
}

var (
	crashRe = regexp.MustCompile(`CRASH reason=(\d+) code=(0x[0-9a-f]+) addr=(0x[0-9a-f]+) fsr=(0x[0-9a-f]+)`)
	wordRe  = regexp.MustCompile(` (\w+)=(0x[0-9a-f]+|true|false)`)
)

// crash is what the image's crash handler printed.
type crash struct {
	reason, code, addr, fsr uint64
	regs                    map[string]uint64
	message, msgbuf         string
}

// fields parses the key=value words of the first line starting with
// prefix.
func fields(out, prefix string) map[string]string {
	m := map[string]string{}
	for _, line := range strings.Split(out, "\n") {
		if strings.HasPrefix(line, prefix) {
			for _, w := range wordRe.FindAllStringSubmatch(line, -1) {
				m[w[1]] = w[2]
			}
			break
		}
	}
	return m
}

func parseCrash(t *testing.T, out string) crash {
	t.Helper()
	m := crashRe.FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("no CRASH line in output:\n%s", out)
	}
	var c crash
	c.reason, _ = strconv.ParseUint(m[1], 10, 64)
	c.code, _ = strconv.ParseUint(m[2], 0, 64)
	c.addr, _ = strconv.ParseUint(m[3], 0, 64)
	c.fsr, _ = strconv.ParseUint(m[4], 0, 64)
	c.regs = map[string]uint64{}
	for k, v := range fields(out, "REGS ") {
		c.regs[k], _ = strconv.ParseUint(v, 0, 64)
	}
	if _, a, ok := strings.Cut(out, "\nMESSAGE "); ok {
		c.message, _, _ = strings.Cut(a, "\n")
	}
	if _, a, ok := strings.Cut(out, "MSGBUF-BEGIN\n"); ok {
		c.msgbuf, _, _ = strings.Cut(a, "\nMSGBUF-END")
	}
	return c
}

// inRAM: the address is in the Go runtime's RAM.
func inRAM(a uint64) bool {
	return a >= imx6ul.DefaultRAMStart && a < imx6ul.DefaultRAMStart+imx6ul.DefaultRAMSize
}

// TestBoot runs every crash kind on the EVK build, and the panic and a data
// abort on the USB armory build (console on UART2).
func TestBoot(t *testing.T) {
	for _, tg := range []target{evk, usbarmory} {
		t.Run(tg.Name, func(t *testing.T) { testBoot(t, tg) })
	}
}

func testBoot(t *testing.T, tg target) {
	img := buildImage(t, tg)
	syms := readSymbols(t, img)
	all := tg.Name == "evk"

	t.Run("panic", func(t *testing.T) {
		r := boot(t, tg, img, 'p', nil, nil)
		boot, _, _ := strings.Cut(r.out, "READY")
		t.Logf("host: READY %v after QEMU start; sleep(200ms) took %v on the host\nguest:\n%s", r.ready, r.sleep, boot)
		for _, want := range []string{"MSGBUF-OK", "DMA-OK", "DEEP-OK"} {
			if !strings.Contains(r.out, want) {
				t.Errorf("missing %s in output:\n%s", want, r.out)
			}
		}
		b := fields(r.out, "BOOT ")
		if b["emulated"] != "true" || b["ram"] != "0x80000000" || b["dma"] != "0x83a00000" || !strings.Contains(r.out, "model="+tg.Name+" ") {
			t.Errorf("BOOT line %v", b)
		}
		// A dump holds RAM, the DMA region and OCRAM.
		if !strings.Contains(r.out, "MEMORY 0x80000000+0x3a00000 0x83a00000+0x200000 0x900000+0x20000 mb=60\n") {
			t.Errorf("memory to dump:\n%s", boot)
		}
		// The DMA region is Normal memory, non-cacheable (TEX=001, C=0,
		// B=0), never executed; RAM stays write-back cached.
		dma, _ := strconv.ParseUint(b["dma_tte"], 0, 32)
		ram, _ := strconv.ParseUint(b["ram_tte"], 0, 32)
		if dma&0xfffff != 0x01412 || dma>>20 != 0x83a {
			t.Errorf("DMA section descriptor %#x, want 0x83a01412 (Normal uncached, XN)", dma)
		}
		if ram&0b1100 != 0b1100 || ram>>12&7 != 0 {
			t.Errorf("RAM section descriptor %#x is not cached", ram)
		}
		if r.status != 5 {
			t.Errorf("QEMU exit status %d, want 5 (Halt(5)); output:\n%s", r.status, r.out)
		}
		c := parseCrash(t, r.out)
		checkPanic(t, syms, c, "panic: boom", "runtime.fatalpanic")
	})

	if !all {
		t.Run("data-abort", func(t *testing.T) {
			r := boot(t, tg, img, 'a', nil, nil)
			if c := parseCrash(t, r.out); r.status != 5 || c.code != 0x10 || c.addr != 4 || syms.name(c.regs["pc"]) != "main.dataAbort" {
				t.Errorf("status %d, crash %+v; output:\n%s", r.status, c, r.out)
			}
		})
		return
	}

	t.Run("goroutine-panic", func(t *testing.T) {
		r := boot(t, tg, img, 'g', nil, nil)
		c := parseCrash(t, r.out)
		if r.status != 5 {
			t.Errorf("QEMU exit status %d; output:\n%s", r.status, r.out)
		}
		checkPanic(t, syms, c, "panic: boom", "runtime.fatalpanic")
		if !strings.Contains(c.msgbuf, "main.boom()") || strings.Contains(c.msgbuf, "main.main()\n") {
			t.Errorf("the trace is not the goroutine's:\n%s", c.msgbuf)
		}
	})

	t.Run("fatal-error", func(t *testing.T) {
		r := boot(t, tg, img, 'f', nil, nil)
		c := parseCrash(t, r.out)
		if r.status != 5 {
			t.Errorf("QEMU exit status %d; output:\n%s", r.status, r.out)
		}
		checkPanic(t, syms, c, "fatal error: sync: unlock of unlocked mutex", "runtime.fatalthrow")
	})

	exceptions := []struct {
		name    string
		mode    byte
		vector  uint64
		pc      string // where pc is
		fs      uint64 // FSR fault status (bits 10, 3:0)
		message string
	}{
		{"undefined", 'u', 0x04, "main.undefined", 0, "undefined instruction at pc 0x"},
		{"prefetch-abort", 'i', 0x0c, "main.Pattern", 0x0d, "prefetch abort at pc 0x"},
		{"data-abort", 'a', 0x10, "main.dataAbort", 0x07, "data abort at pc 0x"},
	}
	for _, e := range exceptions {
		t.Run(e.name, func(t *testing.T) {
			r := boot(t, tg, img, e.mode, nil, nil)
			c := parseCrash(t, r.out)
			if r.status != 5 || !strings.Contains(r.out, "DEEP-OK") {
				t.Errorf("QEMU exit status %d, want 5, and the handler's stack; output:\n%s", r.status, r.out)
			}
			if c.reason != 2 || c.code != e.vector {
				t.Errorf("reason %d vector %#x, want exception %#x", c.reason, c.code, e.vector)
			}
			pc := c.regs["pc"]
			if got := syms.name(pc); got != e.pc {
				t.Errorf("pc %#x in %s, want %s", pc, got, e.pc)
			}
			if sp := c.regs["sp"]; !inRAM(sp) {
				t.Errorf("sp %#x outside RAM", sp)
			}
			if c.regs["cpsr"]&0x1f != 0x1f || c.regs["r10"] == 0 {
				t.Errorf("cpsr %#x (want System mode), r10 (g) %#x", c.regs["cpsr"], c.regs["r10"])
			}
			if fs := c.fsr&0xf | c.fsr>>6&0x10; fs != e.fs {
				t.Errorf("fault status %#x (FSR %#x), want %#x", fs, c.fsr, e.fs)
			}
			switch e.vector {
			case 0x0c: // the fault address is the instruction's, and lr leads back to the call
				if c.addr != pc || syms.name(c.regs["lr"]) != "main.prefetchAbort" {
					t.Errorf("IFAR %#x, pc %#x, lr in %s", c.addr, pc, syms.name(c.regs["lr"]))
				}
			case 0x10: // p[1] of a nil *[4]uint32
				if c.addr != 4 || c.fsr&(1<<11) != 0 {
					t.Errorf("DFAR %#x DFSR %#x, want a read of 0x4", c.addr, c.fsr)
				}
			}
			if !strings.HasPrefix(c.message, e.message) {
				t.Errorf("message %q, want %q...", c.message, e.message)
			}
		})
	}

	t.Run("nested", func(t *testing.T) {
		r := boot(t, tg, img, 'x', nil, nil)
		if r.status != imx6ul.ExitNested {
			t.Errorf("QEMU exit status %d, want %d; output:\n%s", r.status, imx6ul.ExitNested, r.out)
		}
		if !strings.Contains(r.out, "imx6ul board: failure inside the crash handler: exit code ") {
			t.Errorf("no nested failure message; output:\n%s", r.out)
		}
	})

	t.Run("reboot", func(t *testing.T) {
		// With -no-reboot QEMU ends at the reset, with status 0.
		r := boot(t, tg, img, 'r', nil, nil)
		if r.status != 0 || !strings.Contains(r.out, "DEEP-OK") {
			t.Errorf("QEMU exit status %d, want 0 (reset); output:\n%s", r.status, r.out)
		}
	})
}

// checkPanic checks a panic's capture: the message in the message
// buffer, and the panicking goroutine's registers as it switched to the
// system stack to die: pc in runtime.systemstack_switch, sp in its stack,
// whose first word is the return address into caller, r10 its g.
func checkPanic(t *testing.T, syms symbols, c crash, msg, caller string) {
	t.Helper()
	if c.reason != 1 || c.code != 2 {
		t.Errorf("reason %d code %d, want exit 2", c.reason, c.code)
	}
	if !strings.Contains(c.msgbuf, msg) {
		t.Errorf("message buffer lacks %q:\n%s", msg, c.msgbuf)
	}
	if got := syms.name(c.regs["pc"]); got != "runtime.systemstack_switch" {
		t.Errorf("pc %#x in %s", c.regs["pc"], got)
	}
	if !inRAM(c.regs["sp"]) || !inRAM(c.regs["r10"]) {
		t.Errorf("sp %#x, r10 %#x outside RAM", c.regs["sp"], c.regs["r10"])
	}
	if got := syms.name(c.regs["spword"] - 4); got != caller {
		t.Errorf("return address %#x at sp in %s, want %s", c.regs["spword"], got, caller)
	}
}

// TestNetwork: imx-enet brings ENET1 up; the guest answers ping and UDP
// echo from a user-space host on its link; under a ping flood it panics,
// drivers/imxenet takes the controller over and a netdump arrives at the
// host's netdumpd byte for byte.
func TestNetwork(t *testing.T) {
	for _, tg := range []target{evk, usbarmory} {
		t.Run(tg.Name, func(t *testing.T) { testNetwork(t, tg) })
	}
}

func testNetwork(t *testing.T, tg target) {
	img := buildImage(t, tg)
	host := netip.MustParsePrefix("127.0.24.1/24")
	guest := netip.MustParseAddr("127.0.24.2")
	st, err := usernet.New(usernet.Config{Addr: host})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	dir := t.TempDir()
	hostPath, qemuPath := filepath.Join(dir, "net.h"), filepath.Join(dir, "net.q")
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: hostPath, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	st.AttachDgram(conn, &net.UnixAddr{Name: qemuPath, Net: "unixgram"})
	dumps := t.TempDir()
	srv, err := server.New(server.Config{
		Dir: dumps, Listen: netip.AddrPortFrom(netip.IPv4Unspecified(), 20023), Network: st.Network(),
		LookupAddr: func(context.Context, netip.Addr) (string, error) { return "", errors.New("numeric") },
		Log:        func(_ server.Level, msg string) { t.Log("netdumpd: " + msg) },
	})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- srv.Run() }()
	defer func() { srv.Close(); <-done }()

	var pattern uint64
	var answered atomic.Int64
	checked := make(chan error, 1)
	stop := make(chan struct{})
	defer close(stop)
	r := boot(t, tg, img, 'n', append([]string{
		"-netdev", "dgram,id=n0,local.type=unix,local.path=" + qemuPath + ",remote.type=unix,remote.path=" + hostPath,
	}, tg.nic("n0")...), func(line string, in io.Writer) {
		if !strings.HasPrefix(line, "NET-READY") {
			return
		}
		pattern, _ = strconv.ParseUint(fields(line, "NET-READY")["pattern"], 0, 64)
		if !strings.Contains(line, "i.MX "+tg.enet+" at ") {
			t.Errorf("not on %s: %s", tg.enet, line)
		}
		go func() {
			err := serve(t, st, guest)
			if err == nil {
				// the flood: the crash comes while imx-enet answers it
				for i := 0; i < 4; i++ {
					go func() {
						for {
							select {
							case <-stop:
								return
							default:
							}
							if _, err := st.Ping(guest, 100*time.Millisecond); err == nil {
								answered.Add(1)
							}
						}
					}()
				}
				for answered.Load() < 50 {
					time.Sleep(10 * time.Millisecond)
				}
			}
			checked <- err
			in.Write([]byte("c"))
		}()
	})
	if err := <-checked; err != nil {
		t.Fatalf("normal networking: %v\noutput:\n%s", err, r.out)
	}
	t.Logf("%d pings answered by imx-enet before the crash", answered.Load())
	if r.status != 5 || !strings.Contains(r.out, "DUMP-OK") {
		t.Fatalf("QEMU exit status %d, want 5 after DUMP-OK; output:\n%s", r.status, r.out)
	}
	if _, a, ok := strings.Cut(r.out, "DUMP-OK"); ok {
		line, _, _ := strings.Cut(a, "\n")
		t.Logf("guest: dump sent:%s", line)
	}
	checkDump(t, dumps, guest, pattern)
	checkGDB(t, img, filepath.Join(dumps, "vmcore."+guest.String()+".0"))
}

// checkGDB has gdb-multiarch read the vmcore with the image: the
// backtrace of the panicking goroutine from the registers the board
// captured, down to main.main, and a global.
func checkGDB(t *testing.T, img, vmcore string) {
	t.Helper()
	gdb, err := exec.LookPath("gdb-multiarch")
	if err != nil {
		t.Log("SKIP: gdb-multiarch is not installed (make deps installs it): no debugger check")
		return
	}
	out, err := exec.Command(gdb, "-batch", "-nx", "-ex", "set auto-load safe-path /",
		"-ex", "core-file "+vmcore, "-ex", "bt", "-ex", "print/x 'main.l0'.RAMSize", img).CombinedOutput()
	if err != nil {
		t.Fatalf("gdb-multiarch: %v\n%s", err, out)
	}
	bt := regexp.MustCompile(`(?s)runtime\.systemstack_switch.*runtime\.fatalpanic.*runtime\.gopanic.*main\.boom.*main\.network.*main\.main`)
	if !bt.Match(out) || !strings.Contains(string(out), "= 0x3a00000") {
		t.Errorf("gdb-multiarch's backtrace or global:\n%s", out)
	}
}

// serve checks the guest answers pings and echoes UDP datagrams.
func serve(t *testing.T, st *usernet.Stack, guest netip.Addr) error {
	for i := 0; i < 3; i++ {
		rtt, err := st.Ping(guest, 5*time.Second)
		if err != nil {
			return err
		}
		t.Logf("ping %d: %v", i, rtt)
	}
	c, err := st.DialUDP(40007, netip.AddrPortFrom(guest, 7))
	if err != nil {
		return err
	}
	defer c.Close()
	for i := 0; i < 3; i++ {
		msg := []byte("echo " + strconv.Itoa(i) + strings.Repeat(".", 100*i))
		if _, err := c.Write(msg); err != nil {
			return err
		}
		c.SetReadDeadline(time.Now().Add(5 * time.Second))
		buf := make([]byte, 2048)
		n, err := c.Read(buf)
		if err != nil {
			return err
		}
		if !bytes.Equal(buf[:n], msg) {
			return errors.New("echo differs: " + string(buf[:n]))
		}
	}
	return nil
}

// checkDump reads the vmcore and info file netdumpd wrote: an ELF32 ARM
// core of the board's memory (RAM, the DMA region, OCRAM) holding the
// image's pattern at its address, and an info file that says armv7 and the
// panic.
func checkDump(t *testing.T, dir string, guest netip.Addr, pattern uint64) {
	t.Helper()
	info, err := os.ReadFile(filepath.Join(dir, "info."+guest.String()+".0"))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"Architecture: armv7", "Architecture Version: 1", "Panic String: boom", "Dump complete", "Hostname: imx6ul-boot", "Missing ranges: none"} {
		if !strings.Contains(string(info), want) {
			t.Errorf("info file lacks %q:\n%s", want, info)
		}
	}
	f, err := elf.Open(filepath.Join(dir, "vmcore."+guest.String()+".0"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if f.Class != elf.ELFCLASS32 || f.Machine != elf.EM_ARM || f.Type != elf.ET_CORE {
		t.Fatalf("vmcore is %v %v %v", f.Class, f.Machine, f.Type)
	}
	var loads []string
	var ram *elf.Prog
	for _, p := range f.Progs {
		if p.Type == elf.PT_LOAD {
			loads = append(loads, fmt.Sprintf("%#x+%#x", p.Vaddr, p.Filesz))
			if p.Vaddr == imx6ul.DefaultRAMStart {
				ram = p
			}
		}
	}
	if got := strings.Join(loads, " "); got != "0x80000000+0x3a00000 0x83a00000+0x200000 0x900000+0x20000" {
		t.Fatalf("PT_LOADs %s", got)
	}
	want := make([]byte, 64<<10)
	for i := 0; i < len(want); i += 4 {
		binary.LittleEndian.PutUint32(want[i:], uint32(i/4)*2654435761)
	}
	got := make([]byte, len(want))
	if _, err := ram.ReadAt(got, int64(pattern-imx6ul.DefaultRAMStart)); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("the pattern at %#x differs in the vmcore", pattern)
	}
}
