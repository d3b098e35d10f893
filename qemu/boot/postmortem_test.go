package boot

import (
	"bytes"
	"debug/elf"
	"encoding/binary"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tamadump/tamadump/netdump/buildid"
	"github.com/tamadump/tamadump/netdump/crashinfo"
	"github.com/tamadump/tamadump/netdump/server"
)

// The report writer runs the analysis as a process of its own: in these
// tests, this test binary with crashinfoChild set.
const crashinfoChild = "TAMADUMP_TEST_CRASHINFO"

func init() {
	if os.Getenv(crashinfoChild) == "1" {
		os.Exit(crashinfo.Main(os.Args[1:], os.Stdout, os.Stderr))
	}
}

// reporter writes core.txt for the dumps of one machine, as netdumpd
// does, with images from symbolsDir.
type reporter struct {
	w       *crashinfo.Writer
	written chan string
}

func newReporter(t *testing.T, symbolsDir string, mod func(*crashinfo.Config)) *reporter {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	r := &reporter{written: make(chan string, 4)}
	cfg := crashinfo.Config{
		Symbols: symbolsDir,
		Command: []string{exe},
		Env:     []string{crashinfoChild + "=1"},
		Written: func(p string) { r.written <- p },
	}
	if mod != nil {
		mod(&cfg)
	}
	r.w = crashinfo.NewWriter(cfg)
	t.Cleanup(r.w.Close)
	return r
}

// report waits for the next core.txt.
func (r *reporter) report(t *testing.T) string {
	t.Helper()
	select {
	case p := <-r.written:
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	case <-time.After(3 * time.Minute):
		t.Fatal("no core.txt written")
	}
	return ""
}

// boot is run (boot_test.go) with netdumpd writing reports.
func bootReported(t *testing.T, img *Image, r *reporter) (*Machine, string) {
	t.Helper()
	dir := t.TempDir()
	m := startUntil(t, Config{QEMUArgs: img.QEMUArgs(0), NIC: "virtio-mmio", DumpDir: dir, Ended: r.w.Ended}, `READY`, 60*time.Second)
	return m, dir
}

// crashKinds: how each kind of crash is made, the panic string on each
// board, and the function in our code the crashed goroutine's stack must
// reach first.
var crashKinds = []struct {
	kind  string
	panic map[string]string
	top   string
}{
	{"panic", map[string]string{StockGo: "boom", TamaGo: "boom"}, "main.(*image).Panic"},
	{"nil", map[string]string{StockGo: "runtime error: invalid memory address or nil pointer dereference", TamaGo: "Fatal trap 14: page fault at rip 0x"}, "main.trigger"},
	{"index", map[string]string{StockGo: "runtime error: index out of range [5] with length 3", TamaGo: "runtime error: index out of range [5] with length 3"}, "main.trigger"},
	{"fault", map[string]string{StockGo: "SIGILL: illegal instruction", TamaGo: "Fatal trap 6: invalid opcode at rip 0x"}, "main.ud2"},
	{"goroutine", map[string]string{StockGo: "boom in a goroutine", TamaGo: "boom in a goroutine"}, "main.trigger.func1"},
}

// TestCoreTxt: after each kind of crash on each board, core.txt names the
// crashed goroutine's first function in our code, lists the image's other
// goroutines, and dlv core says the same.
func TestCoreTxt(t *testing.T) {
	for _, board := range []string{StockGo, TamaGo} {
		for _, ck := range crashKinds {
			t.Run(board+"/"+ck.kind, func(t *testing.T) {
				img := image(t, board)
				if ck.kind != "panic" {
					var err error
					if img, err = img.With(map[string]string{"crash": ck.kind, "crashdelay": "300ms"}); err != nil {
						t.Fatal(err)
					}
				}
				r := newReporter(t, img.Symbols, nil)
				m, dir := bootReported(t, img, r)
				if ck.kind == "panic" {
					m.Send("panic boom")
				}
				vmcore := checkDump(t, m, dir, ck.panic[board])
				report := r.report(t)
				id, err := buildid.File(img.ELF)
				if err != nil {
					t.Fatal(err)
				}
				crash := regexp.MustCompile(`\nthe crash: goroutine (\d+) in (\S+) at `).FindStringSubmatch(report)
				count := regexp.MustCompile(`\n(\d+) goroutines \(read with Delve`).FindStringSubmatch(report)
				switch {
				case !strings.Contains(report, "image: build-id "+id.String()+" (from the core's build-id note)"):
					t.Errorf("core.txt does not name the image's build ID %s", id)
				case !strings.Contains(report, "panic: "+ck.panic[board]):
					t.Errorf("core.txt lacks the panic message %q", ck.panic[board])
				case crash == nil || crash[2] != ck.top:
					t.Errorf("core.txt: the crash is %q, want it in %s", crash, ck.top)
				case !strings.Contains(report, "\ngoroutine "+crash[1]+" [") ||
					!strings.Contains(report[strings.Index(report, "\ngoroutine "+crash[1]+" ["):], "\n"+ck.top+"\n"):
					t.Errorf("the stack of goroutine %s does not show %s", crash[1], ck.top)
				case count == nil || atoi(count[1]) < 5 || !strings.Contains(report, "\ngithub.com/tamadump/tamadump/board/netstack.Serve.func2\n"):
					t.Errorf("core.txt does not list the image's other goroutines (count %q)", count)
				}
				if t.Failed() {
					t.Logf("core.txt:\n%s", report)
					return
				}
				exe := regexp.MustCompile(`\n  dlv core (\S+) `).FindStringSubmatch(report)
				if exe == nil {
					t.Fatal("core.txt gives no dlv core command")
				}
				dlvSays(t, exe[1], vmcore, crash[1], ck.top, count[1])
			})
		}
	}
}

func atoi(s string) int { n, _ := strconv.Atoi(s); return n }

var (
	dlvOnce sync.Once
	dlvPath string
	dlvErr  error
)

// dlvSays runs `dlv core` (the version go.mod pins) and checks that it
// too has goroutine gid on the crashed thread, among n, and that its stack
// reaches top.
func dlvSays(t *testing.T, exe, vmcore, gid, top, n string) {
	t.Helper()
	dlvOnce.Do(func() {
		cmd := exec.Command("go", "tool", "-n", "dlv")
		cmd.Dir = ModuleRoot()
		out, err := cmd.Output()
		dlvPath, dlvErr = strings.TrimSpace(string(out)), err
	})
	if dlvErr != nil {
		t.Fatalf("go tool -n dlv: %v", dlvErr)
	}
	script := filepath.Join(t.TempDir(), "dlv.init")
	os.WriteFile(script, []byte("goroutines\nstack 50\nexit\n"), 0o600)
	cmd := exec.Command(dlvPath, "core", exe, vmcore, "--init", script, "--allow-non-terminal-interactive=true")
	raw, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("dlv core: %v\n%s", err, raw)
	}
	out := regexp.MustCompile("\x1b\\[[0-9;]*m").ReplaceAllString(string(raw), "") // its bold
	cur := regexp.MustCompile(`\* Goroutine (\d+) - `).FindStringSubmatch(out)
	list, stack, _ := strings.Cut(out, "["+n+" goroutines]\n")
	if cur == nil || cur[1] != gid || list == out || !strings.Contains(stack, " in "+top+"\n") {
		t.Errorf("dlv core does not agree with core.txt (goroutine %s of %s, its stack through %s):\n%s", gid, n, top, out)
	}
}

// TestCoreTxtBadInput: a real dump whose image is missing, that is cut
// short, or whose runtime claims a trillion goroutines, each gets a
// report that says what is wrong; the listing stops at its bound.
func TestCoreTxtBadInput(t *testing.T) {
	img := image(t, StockGo)
	r := newReporter(t, img.Symbols, nil)
	m, dir := bootReported(t, img, r)
	m.Send("panic boom")
	vmcore := checkDump(t, m, dir, "boom")
	r.report(t)
	id, _ := buildid.File(img.ELF)
	core, err := os.ReadFile(vmcore)
	if err != nil {
		t.Fatal(err)
	}
	info, _ := os.ReadFile(filepath.Join(dir, "info.127.0.9.2.0"))
	// again analyses core as dump 0 of another directory.
	again := func(core []byte, symbolsDir string, mod func(*crashinfo.Config)) string {
		d := t.TempDir()
		os.WriteFile(filepath.Join(d, "vmcore.127.0.9.2.0"), core, 0o600)
		os.WriteFile(filepath.Join(d, "info.127.0.9.2.0"), info, 0o600)
		r := newReporter(t, symbolsDir, mod)
		r.w.Ended(server.Ended{Reason: "success", Host: "127.0.9.2", Dir: d, Info: "info.127.0.9.2.0", Core: "vmcore.127.0.9.2.0"})
		return r.report(t)
	}

	empty := t.TempDir()
	if rep := again(core, empty, nil); !strings.Contains(rep, "image: not found: no ELF with build-id "+id.String()+" in "+empty) {
		t.Errorf("missing image:\n%s", rep)
	}
	if rep := again(core[:len(core)/2], img.Symbols, nil); !strings.Contains(rep, "error: the vmcore is truncated: "+strconv.Itoa(len(core)/2)+" of the ") {
		t.Errorf("truncated core:\n%s", rep)
	}

	hostile := append([]byte(nil), core...)
	poke(t, img.ELF, hostile, "runtime.allglen", 1<<40)
	start := time.Now()
	rep := again(hostile, img.Symbols, func(c *crashinfo.Config) { c.Timeout = 30 * time.Second })
	t.Logf("a trillion goroutines: report in %v, %d bytes", time.Since(start).Round(time.Millisecond), len(rep))
	if !strings.Contains(rep, " goroutines (read with Delve from "+filepath.Join(img.Symbols, id.String())) || !strings.Contains(rep, ", listing stopped at 10000\n") {
		t.Errorf("hostile allglen:\n%.4000s", rep)
	}
}

// poke writes v over the variable sym (of the image exe) in a core.
func poke(t *testing.T, exe string, core []byte, sym string, v uint64) {
	t.Helper()
	f, err := elf.Open(exe)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	syms, _ := f.Symbols()
	var addr uint64
	for _, s := range syms {
		if s.Name == sym {
			addr = s.Value
		}
	}
	c, err := elf.NewFile(bytes.NewReader(core))
	if err != nil || addr == 0 {
		t.Fatalf("%s at %#x: %v", sym, addr, err)
	}
	for _, p := range c.Progs {
		if p.Type == elf.PT_LOAD && addr >= p.Vaddr && addr+8 <= p.Vaddr+p.Filesz {
			binary.LittleEndian.PutUint64(core[p.Off+addr-p.Vaddr:], v)
			return
		}
	}
	t.Fatalf("%s (%#x) is not in the core", sym, addr)
}
