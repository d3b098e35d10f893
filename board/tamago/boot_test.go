//go:build !tamago

package tamago_test

import (
	"debug/elf"
	"io"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	board "github.com/tamadump/tamadump/board/tamago"
	"github.com/tamadump/tamadump/qemu"
	qboot "github.com/tamadump/tamadump/qemu/boot"
	"github.com/tamadump/tamadump/qemu/gobuild"
)

func buildImage(t *testing.T) string {
	t.Helper()
	gobin, err := gobuild.Toolchain()
	if err != nil {
		t.Skipf("SKIP: %v", err)
	}
	if _, err := exec.LookPath("qemu-system-x86_64"); err != nil {
		t.Skip("SKIP: qemu-system-x86_64 not found")
	}
	img := filepath.Join(t.TempDir(), "bootimage.elf")
	if err := gobuild.Build(gobuild.Config{
		Go: gobin, Dir: ".", Pkg: "./testdata/bootimage", Out: img, Env: gobuild.TamaGoEnv("amd64"),
		Tags: []string{board.BuildTags}, LDFlags: []string{board.LinkerFlags},
	}); err != nil {
		t.Fatal(err)
	}
	return img
}

type run struct {
	out    string
	status int
	// host time between the SLEEP-START and SLEEP-END lines
	sleep time.Duration
	// host time from QEMU start to READY
	ready time.Duration
}

// boot runs the image with 64 MiB, answers READY with mode.
func boot(t *testing.T, img string, mode byte) run {
	t.Helper()
	var r run
	var sleepStart time.Time
	start := time.Now()
	args := append(qboot.TamaGoArgs(img, 64), "-serial", "stdio", "-nic", "none")
	r.out, r.status = qemu.RunConsole(t, 60*time.Second, args, func(line string, in io.Writer) {
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
	})
	return r
}

// symbolizer maps addresses to function names of the image.
type symbolizer []elf.Symbol

func newSymbolizer(t *testing.T, img string) symbolizer {
	f, err := elf.Open(img)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	syms, err := f.Symbols()
	if err != nil {
		t.Fatal(err)
	}
	var s symbolizer
	for _, sym := range syms {
		if elf.ST_TYPE(sym.Info) == elf.STT_FUNC && sym.Size > 0 {
			s = append(s, sym)
		}
	}
	sort.Slice(s, func(i, j int) bool { return s[i].Value < s[j].Value })
	return s
}

func (s symbolizer) name(pc uint64) string {
	i := sort.Search(len(s), func(i int) bool { return s[i].Value > pc }) - 1
	if i >= 0 && pc < s[i].Value+s[i].Size {
		return strings.TrimSuffix(s[i].Name, ".abi0")
	}
	return "?"
}

var (
	crashRe  = regexp.MustCompile(`CRASH reason=(\d+) code=(0x[0-9a-f]+) err=(0x[0-9a-f]+) cr2=(0x[0-9a-f]+)`)
	regRe    = regexp.MustCompile(` (\w+)=(0x[0-9a-f]+)`)
	framesRe = regexp.MustCompile(`FRAMES ([0-9a-fx ]+)`)
)

type crashOut struct {
	reason, code, cr2 uint64
	regs              map[string]uint64
	frames            []string // symbolised rip + return PCs
	msgbuf            string
}

func parseCrash(t *testing.T, s symbolizer, out string) crashOut {
	t.Helper()
	var c crashOut
	m := crashRe.FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("no CRASH line in output:\n%s", out)
	}
	c.reason, _ = strconv.ParseUint(m[1], 10, 64)
	c.code, _ = strconv.ParseUint(m[2], 0, 64)
	c.cr2, _ = strconv.ParseUint(m[4], 0, 64)
	c.regs = map[string]uint64{}
	for _, line := range strings.Split(out, "\n") {
		if strings.HasPrefix(line, "REGS ") {
			for _, rm := range regRe.FindAllStringSubmatch(line, -1) {
				c.regs[rm[1]], _ = strconv.ParseUint(rm[2], 0, 64)
			}
		}
	}
	if fm := framesRe.FindStringSubmatch(out); fm != nil {
		for i, f := range strings.Fields(fm[1]) {
			pc, _ := strconv.ParseUint(f, 0, 64)
			if i > 0 {
				pc-- // return address: look up the call instruction
			}
			c.frames = append(c.frames, s.name(pc))
		}
	}
	if _, a, ok := strings.Cut(out, "MSGBUF-BEGIN\n"); ok {
		c.msgbuf, _, _ = strings.Cut(a, "\nMSGBUF-END")
	}
	return c
}

func TestBoot(t *testing.T) {
	img := buildImage(t)
	syms := newSymbolizer(t, img)
	ramStart, ramEnd := uint64(board.DefaultRAMStart), uint64(board.DefaultRAMStart+board.DefaultRAMSize)

	t.Run("panic", func(t *testing.T) {
		r := boot(t, img, 'p')
		t.Logf("host: READY %v after QEMU start; sleep(200ms) took %v on host", r.ready, r.sleep)
		boot, _, _ := strings.Cut(r.out, "READY")
		t.Logf("guest:\n%s", boot)
		if r.sleep < 150*time.Millisecond || r.sleep > 800*time.Millisecond {
			t.Errorf("guest sleep of 200ms took %v of host time", r.sleep)
		}
		for _, want := range []string{"MSGBUF-OK", "DMA-OK", "DEEP-OK"} {
			if !strings.Contains(r.out, want) {
				t.Errorf("missing %s in output:\n%s", want, r.out)
			}
		}
		if r.status != 11 {
			t.Errorf("QEMU exit status %d, want 11 (Halt(5)); output:\n%s", r.status, r.out)
		}
		c := parseCrash(t, syms, r.out)
		if c.reason != 1 || c.code != 2 {
			t.Errorf("reason %d code %d, want exit 2", c.reason, c.code)
		}
		if !strings.Contains(c.msgbuf, "panic: boom") {
			t.Errorf("message buffer lacks the panic:\n%s", c.msgbuf)
		}
		if rsp := c.regs["rsp"]; rsp < ramStart || rsp >= ramEnd {
			t.Errorf("rsp %#x outside RAM", rsp)
		}
		if !contains(c.frames, "main.boom") {
			t.Errorf("frame chain %v does not reach main.boom", c.frames)
		}
		t.Logf("frames: %v", c.frames)
	})

	t.Run("goroutine-panic", func(t *testing.T) {
		r := boot(t, img, 'g')
		c := parseCrash(t, syms, r.out)
		if r.status != 11 || c.reason != 1 || !contains(c.frames, "main.boom") {
			t.Errorf("status %d reason %d frames %v; output:\n%s", r.status, c.reason, c.frames, r.out)
		}
	})

	exceptions := []struct {
		name   string
		mode   byte
		vector uint64
		fn     string
	}{
		{"nil-deref", 'n', 14, "main.nilDeref"},
		{"ud2", 'u', 6, "main.ud2"},
		{"int3", 'i', 3, "main.int3"},
	}
	for _, e := range exceptions {
		t.Run(e.name, func(t *testing.T) {
			r := boot(t, img, e.mode)
			c := parseCrash(t, syms, r.out)
			if r.status != 11 {
				t.Errorf("QEMU exit status %d, want 11; output:\n%s", r.status, r.out)
			}
			if c.reason != 2 || c.code != e.vector {
				t.Errorf("reason %d vector %d, want exception %d", c.reason, c.code, e.vector)
			}
			rip := c.regs["rip"]
			if e.vector == 3 {
				rip-- // int3 is a trap: rip follows the instruction
			}
			if got := syms.name(rip); got != e.fn {
				t.Errorf("rip %#x in %s, want %s", c.regs["rip"], got, e.fn)
			}
			if e.vector == 14 && c.cr2 >= 0x1000 {
				t.Errorf("cr2 %#x, want a nil-page address", c.cr2)
			}
			if rsp := c.regs["rsp"]; rsp < ramStart || rsp >= ramEnd {
				t.Errorf("rsp %#x outside RAM", rsp)
			}
			if !strings.Contains(r.out, "DEEP-OK") {
				t.Errorf("crash handler did not get its stack; output:\n%s", r.out)
			}
		})
	}

	t.Run("nested", func(t *testing.T) {
		r := boot(t, img, 'x')
		if want := board.ExitNested<<1 | 1; r.status != want {
			t.Errorf("QEMU exit status %d, want %d; output:\n%s", r.status, want, r.out)
		}
		if !strings.Contains(r.out, "failure inside the crash handler") {
			t.Errorf("no nested failure message; output:\n%s", r.out)
		}
	})
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}
