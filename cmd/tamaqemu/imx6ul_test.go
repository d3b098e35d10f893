package main

import (
	"io"
	"os"
	"strings"
	"testing"
)

// Without the TamaGo toolchain make qemu BOARD=imx6ul says what is
// missing instead of building.
func TestIMX6ULNeedsTamaGo(t *testing.T) {
	t.Setenv("TAMAGO", "/nonexistent/tamago-go/bin/go")
	err := run("imx6ul", "virtio-mmio", 64, t.TempDir(), t.TempDir(), "x", true)
	if err == nil || !strings.Contains(err.Error(), "TAMAGO=/nonexistent/tamago-go/bin/go") {
		t.Fatalf("%v, want it to name the missing toolchain", err)
	}
}

func TestSentRate(t *testing.T) {
	out := captureStdout(t, func() {
		sentRate("x\r\ntamadump: dumped 63049728 bytes (57278464 zero, not sent) in 419 ms, 38 retransmissions\r\n")
	})
	if out != "the image sent 5.8 MB of non-zero data in 419 ms: 13.8 MB/s\n" {
		t.Errorf("%q", out)
	}
	if out := captureStdout(t, func() { sentRate("no dump line") }); out != "" {
		t.Errorf("without the image's line: %q", out)
	}
}

// captureStdout is what fn prints.
func captureStdout(t *testing.T, fn func()) string {
	t.Helper()
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout := os.Stdout
	os.Stdout = w
	fn()
	os.Stdout = stdout
	w.Close()
	b, _ := io.ReadAll(r)
	return string(b)
}
