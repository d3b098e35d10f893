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
	err := run(job{board: "imx6ul", nic: "virtio-mmio", ram: 64, dumpDir: t.TempDir(), out: t.TempDir(), msg: "x", buildOnly: true})
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

// captureStdout is what fn prints, read as it prints (a pipe's buffer
// would stop a long output).
func captureStdout(t *testing.T, fn func()) string {
	t.Helper()
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	printed := make(chan string)
	go func() {
		b, _ := io.ReadAll(r)
		printed <- string(b)
	}()
	stdout := os.Stdout
	os.Stdout = w
	defer func() { os.Stdout = stdout }()
	fn()
	w.Close()
	return <-printed
}
