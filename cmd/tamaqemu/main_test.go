package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tamadump/tamadump/qemu/boot"
)

// TestMainJob runs what `make qemu BOARD=stockgo` runs and checks that the
// dump it reports is there.
func TestMainJob(t *testing.T) {
	if _, err := exec.LookPath("qemu-system-x86_64"); err != nil {
		t.Skip("qemu-system-x86_64 not installed")
	}
	dumps, out := t.TempDir(), t.TempDir()
	if err := run(boot.StockGo, "e1000", 64, dumps, out, "main job", false); err != nil {
		t.Fatal(err)
	}
	info, err := os.ReadFile(filepath.Join(dumps, "info."+boot.GuestAddr.String()+".last"))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(info), "Panic String: main job") || !strings.Contains(string(info), "Dump complete") {
		t.Fatalf("info:\n%s", info)
	}
}
