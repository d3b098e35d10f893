package boot

import (
	"bytes"
	"debug/elf"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tamadump/tamadump/qemu"
	"github.com/tamadump/tamadump/qemu/gobuild"
)

// The end-to-end suite on the i.MX6UL board (qemu-system-arm's
// mcimx6ul-evk, ENET1 under imx-enet, then drivers/imxenet after the
// crash). Each test is one boot of the tamadump image; the image is built
// once, and again with other compiled-in settings where a test needs them.

// imxImage is the image for IMX6UL, or a skip saying what is missing.
func imxImage(t *testing.T) *Image {
	t.Helper()
	if _, err := exec.LookPath(qemu.ARMBinary); err != nil {
		t.Skip("SKIP: the i.MX6UL board is not tested: qemu-system-arm is not installed (apt-get install qemu-system-arm)")
	}
	if _, err := gobuild.Toolchain(); err != nil {
		t.Skipf("SKIP: the i.MX6UL board is not tested: %v", err)
	}
	return image(t, IMX6UL)
}

// imxVariant is the image built with more settings.
func imxVariant(t *testing.T, set map[string]string) *Image {
	t.Helper()
	img, err := imxImage(t).With(set)
	if err != nil {
		t.Fatal(err)
	}
	return img
}

// imxBoot boots img on ENET1 with netdumpd alongside (writing core.txt
// through r, if not nil) and waits for READY.
func imxBoot(t *testing.T, img *Image, r *reporter, args ...string) (*Machine, string, time.Duration) {
	t.Helper()
	dir := t.TempDir()
	cfg := Config{QEMUArgs: append(img.QEMUArgs(0), args...), DumpDir: dir}
	if r != nil {
		cfg.Ended = r.w.Ended
	}
	start := time.Now()
	m := startUntil(t, cfg, `network: ffec0 up, 127\.0\.9\.2/24.*\r\nREADY`, 2*time.Minute)
	return m, dir, time.Since(start)
}

// dumpResult is what the image said about its dump.
type dumpResult struct {
	bytes, zero, ms uint64
	took            time.Duration // host time from the call to the dump's completion
}

var dumpedRe = regexp.MustCompile(`tamadump: dumped (\d+) bytes \((\d+) zero, not sent\) in (\d+) ms`)

// imxCheckDump waits for the dump and checks it: the image halted after a
// good dump; the info file says armv7, the panic and a complete dump; the
// vmcore is an ELF32 ARM core whose read-only sections equal the image's
// byte for byte and which holds the image's pattern at the address it
// printed; nothing allocated after the crash.
func imxCheckDump(t *testing.T, img *Image, m *Machine, dir, panicMsg string) (vmcore string, d dumpResult) {
	t.Helper()
	return imxCheckDumpFrom(t, img, m, dir, GuestAddr.String(), panicMsg)
}

// imxCheckDumpFrom is imxCheckDump for the dump netdumpd names after host.
func imxCheckDumpFrom(t *testing.T, img *Image, m *Machine, dir, host, panicMsg string) (vmcore string, d dumpResult) {
	t.Helper()
	t0 := time.Now()
	if err := m.WaitLog("Completed dump", 2*time.Minute); err != nil {
		t.Fatal(err)
	}
	d.took = time.Since(t0)
	if status, err := m.Wait(30 * time.Second); err != nil || status != img.HaltedStatus(0) {
		t.Fatalf("QEMU exit status %d (%v), want %d (halted after a good dump)", status, err, img.HaltedStatus(0))
	}
	info, err := os.ReadFile(filepath.Join(dir, "info."+host+".0"))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"Architecture: armv7\n", "Architecture Version: 1\n", "Panic String: " + panicMsg, "Dump complete", "Missing ranges: none", "Hostname: tamadump", "(imx6ul board, go1.26.0) build-id "} {
		if !strings.Contains(string(info), want) {
			t.Fatalf("info lacks %q:\n%s", want, info)
		}
	}
	vmcore = filepath.Join(dir, "vmcore."+host+".0")
	core, err := elf.Open(vmcore)
	if err != nil {
		t.Fatal(err)
	}
	defer core.Close()
	if core.Class != elf.ELFCLASS32 || core.Machine != elf.EM_ARM || core.Type != elf.ET_CORE {
		t.Fatalf("vmcore is %v %v %v", core.Class, core.Machine, core.Type)
	}
	exe, err := elf.Open(img.ELF)
	if err != nil {
		t.Fatal(err)
	}
	defer exe.Close()
	n := 0
	for _, s := range exe.Sections {
		if s.Type != elf.SHT_PROGBITS || s.Flags&elf.SHF_ALLOC == 0 || s.Flags&elf.SHF_WRITE != 0 {
			continue
		}
		want, err := s.Data()
		if err != nil {
			t.Fatal(err)
		}
		if got := readCore(t, core, s.Addr, len(want)); !bytes.Equal(got, want) {
			t.Fatalf("section %s (%#x, %d bytes) differs in the vmcore", s.Name, s.Addr, len(want))
		}
		n += len(want)
	}
	if n < 1<<20 {
		t.Fatalf("only %d bytes of read-only sections compared", n)
	}
	addr := must(m.Expect(`pattern at 0x([0-9a-f]+)`, time.Second))[1]
	a, _ := strconv.ParseUint(addr, 16, 64)
	if got := readCore(t, core, a, 34); string(got) != "TAMADUMP-PATTERN-TAMADUMP-PATTERN-" {
		t.Fatalf("pattern at %#x: %q", a, got)
	}
	checkAllocs(t, m, 0)
	mm := dumpedRe.FindStringSubmatch(m.Console())
	if mm == nil {
		t.Fatalf("the image did not say what it dumped:\n%s", lastLines(m.Console(), 8))
	}
	d.bytes, d.zero, d.ms = uint64(atoi(mm[1])), uint64(atoi(mm[2])), uint64(atoi(mm[3]))
	return vmcore, d
}

// readCore reads n bytes at virtual address a from the core's PT_LOADs.
func readCore(t *testing.T, core *elf.File, a uint64, n int) []byte {
	t.Helper()
	for _, p := range core.Progs {
		if p.Type == elf.PT_LOAD && a >= p.Vaddr && a+uint64(n) <= p.Vaddr+p.Filesz {
			b := make([]byte, n)
			if _, err := p.ReadAt(b, int64(a-p.Vaddr)); err != nil {
				t.Fatal(err)
			}
			return b
		}
	}
	t.Fatalf("%#x+%d is not in the vmcore", a, n)
	return nil
}

// gdbMultiarch runs gdb-multiarch on the core with the image's ELF:
// commands, then the output.
func gdbMultiarch(t *testing.T, img *Image, vmcore string, cmds ...string) string {
	t.Helper()
	gdb, err := exec.LookPath("gdb-multiarch")
	if err != nil {
		t.Skip("SKIP: gdb-multiarch is not installed (make deps installs it): no debugger check")
	}
	args := []string{"-batch", "-nx", "-ex", "set auto-load safe-path /", "-ex", "core-file " + vmcore}
	for _, c := range cmds {
		args = append(args, "-ex", c)
	}
	out, err := exec.Command(gdb, append(args, img.ELF)...).CombinedOutput()
	if err != nil {
		t.Fatalf("gdb-multiarch: %v\n%s", err, out)
	}
	return string(out)
}

// TestIMX6ULPanic is the main job on the i.MX6UL board: boot, panic from
// the console, the dump in netdumpd; core.txt for the ARM core (header,
// panic, the registers of NT_PRSTATUS, the gdb-multiarch line; Delve does
// not read 32-bit ARM cores, which it says); gdb-multiarch's backtrace of
// the panicking goroutine through the Go frames, and main.Marker.
func TestIMX6ULPanic(t *testing.T) {
	img := imxImage(t)
	r := newReporter(t, img.Symbols, nil)
	m, dir, ready := imxBoot(t, img, r)
	m.Send("panic boom")
	vmcore, d := imxCheckDump(t, img, m, dir, "boom")
	st, _ := os.Stat(img.ELF)
	t.Logf("boot to READY %v (host); panic to dump complete %v (host); the image sent %d bytes of non-zero data of %d in %d ms: %.2f MB/s; image %d bytes; %s",
		ready.Round(time.Millisecond), d.took.Round(time.Millisecond), d.bytes-d.zero, d.bytes, d.ms,
		float64(d.bytes-d.zero)/float64(max(d.ms, 1))/1e3, st.Size(), regexp.MustCompile(`\d+ retransmissions`).FindString(m.Console()))

	imxCheckPanicCore(t, img, r.report(t), vmcore)
}

// imxCheckPanicCore checks the core of a "panic boom" from the console
// and its core.txt: the report has the panic, NT_PRSTATUS (EM_ARM) with
// the panicking goroutine's pc, the gdb-multiarch line, and says Delve
// does not read 32-bit ARM cores; gdb-multiarch's backtrace goes from the
// panic through the Go frames to main.main and it reads main.Marker.
func imxCheckPanicCore(t *testing.T, img *Image, report, vmcore string) {
	t.Helper()
	for _, want := range []string{
		"panic: boom\n", "thread 1, signal 6 (SIGABRT) (NT_PRSTATUS, EM_ARM)",
		"not listed: Delve reads cores of amd64, arm64, riscv64 and loong64 programs; this core is EM_ARM (ELFCLASS32)",
		"  gdb-multiarch " + filepath.Join(img.Symbols),
	} {
		if !strings.Contains(report, want) {
			t.Errorf("core.txt lacks %q:\n%s", want, report)
		}
	}
	if strings.Contains(report, "dlv core") {
		t.Errorf("core.txt offers dlv for an ARM core:\n%s", report)
	}
	t.Log("SKIP: dlv core is not run: Delve does not read 32-bit ARM (linux/arm) cores")
	pc := regexp.MustCompile(`\bpc +0x([0-9a-f]{8})\b`).FindStringSubmatch(report)
	if pc == nil || symbolAt(t, img, pc[1]) != "runtime.systemstack_switch" {
		t.Errorf("core.txt's pc %q is not the panicking goroutine's (runtime.systemstack_switch)", pc)
	}

	out := gdbMultiarch(t, img, vmcore, "bt", "print/x 'main.Marker'")
	if !regexp.MustCompile(`(?s)runtime\.fatalpanic.*runtime\.gopanic.*main\.\(\*image\)\.Panic.*ddb\.\(\*Shell\)\.run.*main\.main`).MatchString(out) {
		t.Errorf("gdb-multiarch's backtrace does not go from the panic through main.(*image).Panic to main.main:\n%s", out)
	}
	if !strings.Contains(out, "= 0x74616d6164756d70") {
		t.Errorf("gdb-multiarch did not read main.Marker from the vmcore:\n%s", out)
	}
}

// symbolAt is the function or object of the image at hex address a.
func symbolAt(t *testing.T, img *Image, a string) string {
	t.Helper()
	v, _ := strconv.ParseUint(a, 16, 64)
	f, err := elf.Open(img.ELF)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	syms, _ := f.Symbols()
	for _, s := range syms {
		if s.Size > 0 && v >= s.Value && v < s.Value+s.Size {
			return s.Name
		}
	}
	return "?"
}

// TestIMX6ULCrashKinds: each way the board can fail reaches the dump with
// its message as the panic string and the failing context's registers in
// NT_PRSTATUS: for an exception the faulting pc itself, for a Go panic
// the goroutine that panicked, which gdb-multiarch unwinds.
func TestIMX6ULCrashKinds(t *testing.T) {
	for _, tc := range []struct {
		kind  string
		panic string // its start
		pc    string // the function pc is in
		bt    string // in gdb-multiarch's backtrace
	}{
		{"nil", "data abort at pc 0x", "main.trigger", "main.trigger"},
		{"write", "data abort at pc 0x", "main.trigger", "main.trigger"},
		{"fault", "undefined instruction at pc 0x", "main.ud2", "main.ud2"},
		{"goroutine", "boom in a goroutine", "runtime.systemstack_switch", "main.trigger.func1"},
		{"fatal", "sync: unlock of unlocked mutex", "runtime.systemstack_switch", "main.trigger"},
	} {
		t.Run(tc.kind, func(t *testing.T) {
			img := imxVariant(t, map[string]string{"crash": tc.kind, "crashdelay": "300ms"})
			r := newReporter(t, img.Symbols, nil)
			m, dir, _ := imxBoot(t, img, r)
			vmcore, _ := imxCheckDump(t, img, m, dir, tc.panic)
			info := string(WaitInfo(t, dir))
			report := r.report(t)
			pc := regexp.MustCompile(`\bpc +0x([0-9a-f]{8})\b`).FindStringSubmatch(report)
			if pc == nil || symbolAt(t, img, pc[1]) != tc.pc {
				t.Errorf("NT_PRSTATUS pc %q, want it in %s:\n%s", pc, tc.pc, report)
			}
			if ps := regexp.MustCompile(`Panic String: .*`).FindString(info); pc != nil {
				t.Logf("%s; pc %s in %s", ps, pc[1], symbolAt(t, img, pc[1]))
			}
			switch tc.kind {
			case "nil", "write":
				// The message names the access and its address, in the
				// unmapped zero page, and that pc.
				access := map[string]string{"nil": "read from 0x", "write": "write to 0x800,"}[tc.kind]
				if pc != nil && !strings.Contains(info, "Panic String: data abort at pc 0x"+strings.TrimLeft(pc[1], "0")+": "+access) {
					t.Errorf("the panic string does not name the %s at pc %s:\n%s", access, pc[1], info)
				}
				if !strings.Contains(report, "signal 11 (SIGSEGV)") {
					t.Errorf("an exception is not SIGSEGV in NT_PRSTATUS:\n%s", report)
				}
			}
			out := gdbMultiarch(t, img, vmcore, "bt")
			if !strings.Contains(out, " "+tc.bt+" (") {
				t.Errorf("gdb-multiarch's backtrace lacks %s:\n%s", tc.bt, out)
			}
			if testing.Verbose() {
				t.Logf("gdb-multiarch:\n%s", out)
			}
		})
	}
}

// TestIMX6ULDebugger: with debug=on the crash stops at db> as on amd64:
// bt, netdump to the server named there, reset.
func TestIMX6ULDebugger(t *testing.T) {
	img := imxVariant(t, map[string]string{"debug": "on"})
	m, dir, _ := imxBoot(t, img, nil)
	m.Send("panic stop here")
	if _, err := m.Expect(`db> $`, time.Minute); err != nil {
		t.Fatal(err)
	}
	m.Send("bt")
	if _, err := m.Expect(`(?s)goroutine 1 \[running\]:.*main\.main\(\).*db> $`, 30*time.Second); err != nil {
		t.Fatal(err)
	}
	m.Send("netdump -s 127.0.9.1 -c 127.0.9.2")
	if _, err := m.Expect(`(?s)netdump finished\..*db> $`, 2*time.Minute); err != nil {
		t.Fatal(err)
	}
	if info := string(WaitInfo(t, dir)); !strings.Contains(info, "Panic String: stop here") || !strings.Contains(info, "Architecture: armv7") {
		t.Fatalf("info:\n%s", info)
	}
	m.Send("reset")
	if _, err := m.Wait(30 * time.Second); err != nil {
		t.Fatal(err)
	}
}

// TestIMX6ULReboot: after=reboot resets the board through its watchdog
// once the dump is sent; without -no-reboot QEMU resets the machine and
// the image boots again.
func TestIMX6ULReboot(t *testing.T) {
	img := imxVariant(t, map[string]string{"after": "reboot"})
	args := slices.DeleteFunc(img.QEMUArgs(0), func(a string) bool { return a == "-no-reboot" })
	dir := t.TempDir()
	m := startUntil(t, Config{QEMUArgs: args, DumpDir: dir}, `READY`, 2*time.Minute)
	m.Send("panic then reboot")
	if err := m.WaitLog("Completed dump", 2*time.Minute); err != nil {
		t.Fatal(err)
	}
	if _, err := m.Expect(`(?s)tamadump: dumped .*tamadump dev on imx6ul .*READY`, time.Minute); err != nil {
		t.Fatal(err)
	}
}

// TestIMX6ULPanicUnderTraffic is the takeover under load: the panic comes
// while imx-enet answers a ping flood from the server's network, and
// drivers/imxenet's dump, made from whatever state imx-enet left the
// controller in, is still byte-exact (imxCheckDump).
func TestIMX6ULPanicUnderTraffic(t *testing.T) {
	img := imxImage(t)
	m, dir, _ := imxBoot(t, img, nil)
	if rtt, err := m.Stack().Ping(GuestAddr, 10*time.Second); err != nil {
		t.Fatalf("ping %v: %v", GuestAddr, err)
	} else {
		t.Logf("ping %v: %v", GuestAddr, rtt)
	}
	echo, err := m.Stack().DialUDP(40007, netip.AddrPortFrom(GuestAddr, 7))
	if err != nil {
		t.Fatal(err)
	}
	defer echo.Close()
	echo.Write([]byte("echo?"))
	echo.SetReadDeadline(time.Now().Add(10 * time.Second))
	buf := make([]byte, 64)
	if n, err := echo.Read(buf); err != nil || string(buf[:n]) != "echo?" {
		t.Fatalf("udp echo: %q %v", buf[:n], err)
	}
	var answered, sent atomic.Int64
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for i := 0; i < 4; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				sent.Add(1)
				if _, err := m.Stack().Ping(GuestAddr, 200*time.Millisecond); err == nil {
					answered.Add(1)
				}
			}
		}()
	}
	defer func() { close(stop); wg.Wait() }()
	for deadline := time.Now().Add(30 * time.Second); answered.Load() < 100; {
		if time.Now().After(deadline) {
			t.Fatalf("imx-enet answered %d of %d pings in 30 s", answered.Load(), sent.Load())
		}
		time.Sleep(10 * time.Millisecond)
	}
	m.Send("panic under load")
	imxCheckDump(t, img, m, dir, "under load")
	t.Logf("%d of %d pings answered by imx-enet; the flood went on through the crash and the dump", answered.Load(), sent.Load())
}

// TestIMX6ULUSBArmory: the image built for the USB armory Mk II LAN runs
// its console on UART2 and dumps through ENET2.
func TestIMX6ULUSBArmory(t *testing.T) {
	imxImage(t)
	dir, err := os.MkdirTemp(filepath.Dir(images[IMX6UL].ELF), "usbarmory-")
	if err != nil {
		t.Fatal(err)
	}
	img, err := Build(IMX6ULUSBArmory, dir, Settings())
	if err != nil {
		t.Fatal(err)
	}
	m, dir, _ := imxBoot(t, img, nil)
	if _, err := m.Expect(`ffec0: i\.MX ENET2 at 0x20b4000 on USB armory Mk II LAN`, time.Second); err != nil {
		t.Fatal(err)
	}
	m.Send("panic on the armory")
	imxCheckDump(t, img, m, dir, "on the armory")
}

// TestIMX6ULAllocationCount is the negative control of the count on arm:
// the image built with the tag crashalloc allocates one small and one
// large object after the crash, and must say 2.
func TestIMX6ULAllocationCount(t *testing.T) {
	imxImage(t)
	dir, err := os.MkdirTemp(filepath.Dir(images[IMX6UL].ELF), "crashalloc-")
	if err != nil {
		t.Fatal(err)
	}
	img, err := Build(IMX6UL, dir, Settings(), "crashalloc")
	if err != nil {
		t.Fatal(err)
	}
	m, _, _ := imxBoot(t, img, nil)
	m.Send("panic allocate after this")
	checkAllocs(t, m, 2)
}
