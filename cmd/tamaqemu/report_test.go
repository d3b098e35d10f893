package main

import (
	"bytes"
	"os"
	"os/exec"
	"strings"
	"testing"

	"github.com/tamadump/tamadump/qemu/boot"
)

// The report writer runs this program's crashinfo sub-command; in tests
// this program is the test binary.
func init() {
	if code, ok := subcommand(os.Args[1:]); ok {
		os.Exit(code)
	}
}

// TestShowsReport: make qemu ends with the head of core.txt, which names
// the function that panicked, and the exact debugger command lines.
func TestShowsReport(t *testing.T) {
	if _, err := exec.LookPath("qemu-system-x86_64"); err != nil {
		t.Skip("qemu-system-x86_64 not installed")
	}
	dumps, out := t.TempDir(), t.TempDir()
	var err error
	said := captureStdout(t, func() {
		err = run(job{board: boot.StockGo, nic: "virtio-mmio", ram: 64, dumpDir: dumps, out: out, msg: "shown"})
	})
	if err != nil {
		t.Fatalf("%v\n%s", err, said)
	}
	img := boot.SymbolsDir(out)
	for _, want := range []string{
		"symbols: " + img + "/",
		"core.txt.127.0.9.2.0 (head) ---",
		"panic: shown",
		"the crash: goroutine 1 in main.(*image).Panic at github.com/tamadump/tamadump/cmd/tamadump/main.go:",
		"dlv core " + img + "/",
		"gdb " + img + "/",
	} {
		if !strings.Contains(said, want) {
			t.Errorf("make qemu did not print %q", want)
		}
	}
	if i := strings.Index(said, "debug it:\n"); i < 0 || !bytes.Contains([]byte(said[i:]), []byte(dumps+"/vmcore.127.0.9.2.0")) {
		t.Errorf("the debugger commands do not name the vmcore %s/vmcore.127.0.9.2.0", dumps)
	}
	if t.Failed() {
		t.Logf("make qemu printed:\n%s", said)
	}
}
