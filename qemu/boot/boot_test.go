package boot

import (
	"bytes"
	"debug/elf"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tamadump/tamadump/qemu/gobuild"
)

// images are built once per board for all tests.
var (
	imagesMu sync.Mutex
	images   = map[string]*Image{}
)

func image(t *testing.T, board string) *Image {
	t.Helper()
	need(t, board)
	imagesMu.Lock()
	defer imagesMu.Unlock()
	if img := images[board]; img != nil {
		return img
	}
	dir, err := os.MkdirTemp("", "tamadump-image-")
	if err != nil {
		t.Fatal(err)
	}
	img, err := Build(board, dir, Settings())
	if err != nil {
		t.Fatal(err)
	}
	images[board] = img
	return img
}

// need skips the test unless QEMU and the board's toolchain are installed.
func need(t *testing.T, board string) {
	t.Helper()
	if _, err := exec.LookPath("qemu-system-x86_64"); err != nil {
		t.Skip("qemu-system-x86_64 not installed")
	}
	if board == TamaGo {
		if _, err := gobuild.Toolchain(); err != nil {
			t.Skipf("SKIP: TamaGo board not tested: %v", err)
		}
	}
}

func TestMain(m *testing.M) {
	code := m.Run()
	for _, img := range images {
		os.RemoveAll(filepath.Dir(img.ELF))
	}
	os.Exit(code)
}

// startUntil starts a machine, shows its console if the test fails, and
// waits until its console matches ready (a regular expression).
func startUntil(t *testing.T, cfg Config, ready string, timeout time.Duration) *Machine {
	t.Helper()
	m, err := Start(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		m.Close()
		if t.Failed() {
			t.Logf("console:\n%s", m.Console())
		}
	})
	if _, err := m.Expect(ready, timeout); err != nil {
		t.Fatal(err)
	}
	return m
}

// run boots img with nic, waits for READY, and returns the machine.
func run(t *testing.T, img *Image, nic string) (*Machine, string) {
	t.Helper()
	dir := t.TempDir()
	m := startUntil(t, Config{QEMUArgs: img.QEMUArgs(0), NIC: nic, DumpDir: dir}, `READY`, 60*time.Second)
	return m, dir
}

// checkDump waits for the dump and checks the vmcore and info file.
func checkDump(t *testing.T, m *Machine, dir, panicMsg string) (vmcore string) {
	t.Helper()
	return checkDumpFrom(t, m, dir, GuestAddr.String(), panicMsg)
}

// checkDumpFrom is checkDump for the files of client host.
func checkDumpFrom(t *testing.T, m *Machine, dir, host, panicMsg string) (vmcore string) {
	t.Helper()
	if err := m.WaitLog("Completed dump", 60*time.Second); err != nil {
		t.Fatal(err)
	}
	status, err := m.Wait(30 * time.Second)
	if err != nil || status != 1 { // Halt(0)
		t.Fatalf("QEMU exit status %d (%v), want 1 (dump succeeded)", status, err)
	}
	vmcore = filepath.Join(dir, "vmcore."+host+".0")
	info, err := os.ReadFile(filepath.Join(dir, "info."+host+".0"))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"Panic String: " + panicMsg, "Dump complete", "Missing ranges: none", "Architecture: amd64", "Hostname: tamadump", "Header Parity Check: Pass"} {
		if !strings.Contains(string(info), want) {
			t.Fatalf("info lacks %q:\n%s", want, info)
		}
	}
	// The dump time is the guest's clock at the crash: within a few
	// minutes of the host's (a wrong RTC reading, time zone or boot
	// offset is off by hours).
	if m := regexp.MustCompile(`Dumptime: (.*)`).FindSubmatch(info); m == nil {
		t.Errorf("no dump time:\n%s", info)
	} else if at, err := time.ParseInLocation(time.ANSIC, string(m[1]), time.Local); err != nil || time.Since(at).Abs() > 3*time.Minute {
		t.Errorf("dump time %q (%v) is not now (%v)", m[1], err, time.Now().Format(time.ANSIC))
	}
	// The pattern the image wrote, at the address it printed.
	addr := must(m.Expect(`pattern at 0x([0-9a-f]+)`, time.Second))[1]
	a, _ := strconv.ParseUint(addr, 16, 64)
	f, err := elf.Open(vmcore)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if f.Type != elf.ET_CORE {
		t.Fatalf("vmcore is %v", f.Type)
	}
	got := make([]byte, 34)
	found := false
	for _, p := range f.Progs {
		if p.Type == elf.PT_LOAD && a >= p.Vaddr && a+uint64(len(got)) <= p.Vaddr+p.Filesz {
			if _, err := p.ReadAt(got, int64(a-p.Vaddr)); err != nil {
				t.Fatal(err)
			}
			found = true
		}
	}
	if !found || string(got) != "TAMADUMP-PATTERN-TAMADUMP-PATTERN-" {
		t.Fatalf("pattern at %#x: found %v, %q", a, found, got)
	}
	checkAllocs(t, m, 0)
	// A datagram whose checksum the guest took before its page changed
	// (memory the dump's own code writes) is dropped here and sent again:
	// the guest must send none (TestBadChecksums shows the count works).
	if bad := m.Stack().BadChecksums(); bad != 0 {
		t.Errorf("the host dropped %d datagrams with bad checksums", bad)
	}
	return vmcore
}

// checkAllocs checks the image's count of heap allocations after the crash.
func checkAllocs(t *testing.T, m *Machine, want int) {
	t.Helper()
	got, err := m.Expect(`heap allocations after the crash: ([^\r\n]*)\r\n`, 10*time.Second)
	if err != nil {
		t.Fatalf("%v:\n%s", err, lastLines(m.Console(), 8))
	}
	if got[1] != strconv.Itoa(want) {
		t.Errorf("heap allocations after the crash: %s, want %d", got[1], want)
	}
}

func must(s []string, err error) []string {
	if err != nil {
		panic(err)
	}
	return s
}

func lastLines(s string, n int) string {
	l := strings.Split(s, "\n")
	return strings.Join(l[max(0, len(l)-n):], "\n")
}

// gdbCheck reads a global and the backtrace of the crash from the vmcore
// with Debian's gdb.
func gdbCheck(t *testing.T, img *Image, vmcore string) {
	t.Helper()
	if _, err := exec.LookPath("gdb"); err != nil {
		t.Log("gdb not installed: skipping the debugger check")
		return
	}
	out, err := exec.Command("gdb", "-batch", "-nx", "-ex", "set auto-load safe-path /",
		"-ex", "print/x 'main.Marker'", "-ex", "bt", img.ELF, vmcore).CombinedOutput()
	if err != nil {
		t.Fatalf("gdb: %v\n%s", err, out)
	}
	if !strings.Contains(string(out), "0x74616d6164756d70") {
		t.Errorf("gdb did not read main.Marker from the vmcore:\n%s", out)
	}
	if !regexp.MustCompile(`in main\.main \(\)`).Match(out) {
		t.Errorf("gdb's backtrace does not reach main.main:\n%s", out)
	}
}

func TestPanicDumps(t *testing.T) {
	for _, board := range []string{StockGo, TamaGo} {
		for _, nic := range append(NICs[:len(NICs):len(NICs)], "virtio-mmio-stream") {
			t.Run(board+"/"+nic, func(t *testing.T) {
				img := image(t, board)
				// -stream: without checksum offload, where the guest
				// sums and copies each payload itself.
				stream := nic == "virtio-mmio-stream"
				if stream {
					nic = "virtio-mmio"
				}
				dir := t.TempDir()
				m := startUntil(t, Config{QEMUArgs: img.QEMUArgs(0), NIC: nic, DumpDir: dir, Stream: stream}, `READY`, 60*time.Second)
				if err := m.Send("panic boom"); err != nil {
					t.Fatal(err)
				}
				vmcore := checkDump(t, m, dir, "boom")
				if nic == "virtio-mmio" && !stream {
					gdbCheck(t, img, vmcore)
				}
			})
		}
	}
}

// TestCrashKinds: a nil dereference, an index out of range, a CPU
// exception and a panic on another goroutine each produce a dump with the
// right panic string.
func TestCrashKinds(t *testing.T) {
	for _, board := range []string{StockGo, TamaGo} {
		for _, tc := range []struct {
			kind string
			want map[string]string // panic string per board
		}{
			{"nil", map[string]string{StockGo: "runtime error: invalid memory address or nil pointer dereference", TamaGo: "Fatal trap 14: page fault at rip 0x"}},
			{"index", map[string]string{StockGo: "runtime error: index out of range [5] with length 3", TamaGo: "runtime error: index out of range [5] with length 3"}},
			{"fault", map[string]string{StockGo: "SIGILL: illegal instruction", TamaGo: "Fatal trap 6: invalid opcode at rip 0x"}},
			{"goroutine", map[string]string{StockGo: "boom in a goroutine", TamaGo: "boom in a goroutine"}},
		} {
			t.Run(board+"/"+tc.kind, func(t *testing.T) {
				img, err := image(t, board).With(map[string]string{"crash": tc.kind, "crashdelay": "300ms"})
				if err != nil {
					t.Fatal(err)
				}
				m, dir := run(t, img, "virtio-mmio")
				checkDump(t, m, dir, tc.want[board])
			})
		}
	}
}

// TestDebugger stops at the db> prompt after the panic, as FreeBSD's ddb:
// bt shows the panicking goroutine, netdump -s retargets the dump from
// the server configured at boot (where nobody listens) to the one named
// there and dumps, reset reports the allocations after the crash and ends
// the machine.
func TestDebugger(t *testing.T) {
	for _, board := range []string{StockGo, TamaGo} {
		t.Run(board, func(t *testing.T) {
			img, err := image(t, board).With(map[string]string{"debug": "on", "server": "127.0.9.7"})
			if err != nil {
				t.Fatal(err)
			}
			m, dir := run(t, img, "e1000")
			m.Send("panic stop here")
			if _, err := m.Expect(`db> $`, 30*time.Second); err != nil {
				t.Fatal(err)
			}
			m.Send("bt")
			if _, err := m.Expect(`(?s)goroutine 1 \[running\]:.*main\.main\(\).*db> $`, 10*time.Second); err != nil {
				t.Fatal(err)
			}
			m.Send("netdump -s 127.0.9.1")
			if _, err := m.Expect(`(?s)netdump finished\..*db> $`, 60*time.Second); err != nil {
				t.Fatal(err)
			}
			if err := m.WaitLog("Completed dump", 10*time.Second); err != nil {
				t.Fatal(err)
			}
			info := string(WaitInfo(t, dir))
			if !strings.Contains(info, "Panic String: stop here") {
				t.Fatalf("info:\n%s", info)
			}
			m.Send("reset")
			checkAllocs(t, m, 0)
			if _, err := m.Wait(30 * time.Second); err != nil {
				t.Fatal(err)
			}
		})
	}
}

// TestAllocationCount is the negative control of the count above: an image
// built with the tag crashalloc allocates one small and one large object
// after the crash, and must say 2.
func TestAllocationCount(t *testing.T) {
	for _, board := range []string{StockGo, TamaGo} {
		t.Run(board, func(t *testing.T) {
			need(t, board)
			img, err := Build(board, t.TempDir(), Settings(), "crashalloc")
			if err != nil {
				t.Fatal(err)
			}
			m, _ := run(t, img, "virtio-mmio")
			m.Send("panic allocate after this")
			checkAllocs(t, m, 2)
		})
	}
}

// TestLongPanicMessage panics with a 1,000-byte message: the image prints it
// whole and still allocates nothing after the crash.
func TestLongPanicMessage(t *testing.T) {
	for _, board := range []string{StockGo, TamaGo} {
		t.Run(board, func(t *testing.T) {
			m, dir := run(t, image(t, board), "virtio-mmio")
			msg := strings.Repeat("0123456789", 100)
			m.Send("panic " + msg)
			if _, err := m.Expect(`tamadump: panic: `+msg+`\r\n`, 60*time.Second); err != nil {
				t.Fatal(err)
			}
			checkDump(t, m, dir, msg[:100])
		})
	}
}

// TestPanicUnderTraffic panics the image while the host floods its UDP
// echo port: the dump still completes.
func TestPanicUnderTraffic(t *testing.T) {
	for _, board := range []string{StockGo, TamaGo} {
		t.Run(board, func(t *testing.T) { panicUnderTraffic(t, image(t, board)) })
	}
}

func panicUnderTraffic(t *testing.T, img *Image) {
	m, dir := run(t, img, "virtio-pci")
	conn, err := m.Stack().DialUDP(0, netip.AddrPortFrom(GuestAddr, 7))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	stop := make(chan struct{})
	var sent, echoed int
	var wg sync.WaitGroup
	wg.Add(2)
	go func() {
		defer wg.Done()
		payload := bytes.Repeat([]byte("traffic!"), 128)
		for {
			select {
			case <-stop:
				return
			default:
			}
			if _, err := conn.Write(payload); err == nil {
				sent++
			}
			// About 10 MB/s: far more than the guest echoes under TCG,
			// without starving the host's two cores.
			time.Sleep(100 * time.Microsecond)
		}
	}()
	go func() {
		defer wg.Done()
		buf := make([]byte, 2048)
		for {
			conn.SetReadDeadline(time.Now().Add(100 * time.Millisecond))
			if _, err := conn.Read(buf); err == nil {
				echoed++
			}
			select {
			case <-stop:
				return
			default:
			}
		}
	}()
	if rtt, err := m.Stack().Ping(GuestAddr, 10*time.Second); err != nil {
		t.Fatalf("ping %v: %v", GuestAddr, err)
	} else {
		t.Logf("ping %v: %v", GuestAddr, rtt)
	}
	time.Sleep(time.Second)
	m.Send("panic under load")
	checkDump(t, m, dir, "under load")
	close(stop)
	wg.Wait()
	if echoed == 0 {
		t.Fatalf("the image echoed none of %d datagrams: the load never reached it", sent)
	}
	t.Logf("sent %d datagrams, %d echoed", sent, echoed)
}

// WaitInfo waits for the first info file in dir.
func WaitInfo(t *testing.T, dir string) []byte {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		b, err := os.ReadFile(filepath.Join(dir, "info.127.0.9.2.0"))
		if err == nil && bytes.Contains(b, []byte("Dump complete")) {
			return b
		}
		if time.Now().After(deadline) {
			t.Fatalf("no complete info file: %v", err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
