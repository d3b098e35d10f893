package main

import (
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
