package stockgo_test

import (
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tamadump/tamadump/board/stockgo"
	"github.com/tamadump/tamadump/board/stockgo/shim"
	"github.com/tamadump/tamadump/qemu"
)

func TestReadInfoOnLinux(t *testing.T) {
	_, err := stockgo.ReadInfo()
	if !errors.Is(err, stockgo.ErrNotShim) || !strings.Contains(err.Error(), "not running on the tamadump shim") {
		t.Fatalf("ReadInfo under Linux: %v", err)
	}
}

var (
	buildOnce         sync.Once
	shimELF, guestELF string
	buildDir          string
	buildErr          error
)

// images builds the shim and testdata/guest once for all boot tests.
func images(t *testing.T) (string, string) {
	t.Helper()
	if _, err := exec.LookPath("qemu-system-x86_64"); err != nil {
		t.Skip("qemu-system-x86_64 not installed")
	}
	if _, err := exec.LookPath("gcc"); err != nil {
		t.Skip("gcc not installed")
	}
	buildOnce.Do(func() {
		buildDir, buildErr = os.MkdirTemp("", "stockgo-test")
		if buildErr != nil {
			return
		}
		if shimELF, buildErr = shim.Build(buildDir); buildErr != nil {
			return
		}
		guestELF = filepath.Join(buildDir, "guest")
		cmd := exec.Command("go", "build", "-o", guestELF, "./testdata/guest")
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOARCH=amd64")
		if out, err := cmd.CombinedOutput(); err != nil {
			buildErr = errors.New(string(out))
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return shimELF, guestELF
}

func TestMain(m *testing.M) {
	code := m.Run()
	if buildDir != "" {
		os.RemoveAll(buildDir)
	}
	os.Exit(code)
}

// boot runs the guest scenario and returns its console output and QEMU's
// exit status. If input is set, it is typed once the console shows "ready>".
func boot(t *testing.T, scenario, input string) (string, int) {
	shimPath, guestPath := images(t)
	args := append(shim.QEMUArgs(shimPath, guestPath, 64, "-- "+scenario+" a1 a2 GREETING=hi"),
		"-nodefaults", "-serial", "stdio")
	start := time.Now()
	out, status := qemu.RunConsole(t, 90*time.Second, args, func(line string, in io.Writer) {
		if input != "" && strings.Contains(line, "ready>") {
			io.WriteString(in, input)
		}
	})
	t.Logf("%s: %.2fs\n%s", scenario, time.Since(start).Seconds(), out)
	return out, status
}

func expect(t *testing.T, out string, status, wantStatus int, want ...string) {
	t.Helper()
	if status != wantStatus {
		t.Errorf("QEMU exit status %d, want %d", status, wantStatus)
	}
	for _, w := range want {
		if !strings.Contains(out, w) {
			t.Errorf("console lacks %q", w)
		}
	}
}

func TestBootHello(t *testing.T) {
	out, st := boot(t, "hello", "")
	expect(t, out, st, 1, `hello, world ["a1" "a2"] hi`) // exit_group(0)
}

func TestBootGCGoroutinesTimers(t *testing.T) {
	out, st := boot(t, "gc", "")
	expect(t, out, st, 1, "gc ok total=104857600", "slept=true")
}

func TestBootNilDerefRecovered(t *testing.T) {
	out, st := boot(t, "nil", "")
	expect(t, out, st, 1, "recovered: runtime error: invalid memory address or nil pointer dereference")
}

func TestBootSerialInput(t *testing.T) {
	out, st := boot(t, "readline", "typed line\n")
	expect(t, out, st, 1, `got "typed line\n" <nil>`)
}

func TestBootInfoMemMapMsgBuf(t *testing.T) {
	out, st := boot(t, "info", "")
	expect(t, out, st, 1, "info ok", `cmdline "-- info a1 a2 GREETING=hi"`)
}

// The watcher wakes on the panic's exit_group(2) with the registers of
// runtime.exit, finds the panic in MSGBUF, and halts with code 7.
func TestBootCrashWaitPanic(t *testing.T) {
	out, st := boot(t, "crash-main", "")
	expect(t, out, st, 15, "panic: boom", "WATCHER reason=0x0000000000000001 code=0x0000000000000002",
		"func=runtime.exit", "MSGBUF has the panic")
}

func TestBootCrashWaitNilInGoroutine(t *testing.T) {
	out, st := boot(t, "crash-goroutine", "")
	expect(t, out, st, 15, "WATCHER reason=0x0000000000000001 code=0x0000000000000002", "MSGBUF has the nil dereference")
}

// A fault in the watcher after the crash halts (status (125<<1|1)&0xff).
func TestBootCrashWaitWatcherFault(t *testing.T) {
	out, st := boot(t, "crash-watcherfault", "")
	expect(t, out, st, 251, "WATCHER reason=", "shim: fault in the dump path (vector 14 at rip")
}

// A watcher woken but never back in the program (here: spinning, as one
// stuck in the runtime would) makes the shim halt after 5 s with a
// message, status (124<<1|1)&0xff, rather than hang.
func TestBootCrashWaitWatcherStuck(t *testing.T) {
	out, st := boot(t, "crash-watcherstuck", "")
	expect(t, out, st, 249, "panic: boom", "shim: crash watcher woken but stuck in the runtime; halting")
}
