package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/tamadump/tamadump/board/tamago"
	"github.com/tamadump/tamadump/qemu/gobuild"
)

// hostOnly is what the image must never link: the host's test network and
// netdump server, and process spawning.
func hostOnly(deps []string) []string {
	var bad []string
	for _, d := range deps {
		if d == "os/exec" || d == "github.com/tamadump/tamadump/netdump/server" ||
			strings.HasPrefix(d, "github.com/tamadump/tamadump/qemu/") {
			bad = append(bad, d)
		}
	}
	return bad
}

// deps lists the packages pkg links for a build, with go list -deps.
func deps(t *testing.T, gocmd string, env []string, tags, pkg string) []string {
	t.Helper()
	cmd := exec.Command(gocmd, "list", "-deps", "-tags", tags, pkg)
	cmd.Env = env
	cmd.Dir = filepath.Join("..", "..")
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list -deps %s: %v", pkg, err)
	}
	return strings.Fields(string(out))
}

// TestImageImports checks the image's import graph on both boards.
func TestImageImports(t *testing.T) {
	stock := append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOARCH=amd64")
	if bad := hostOnly(deps(t, "go", stock, "", "./cmd/tamadump")); len(bad) > 0 {
		t.Errorf("the stock-Go image links host-only packages: %v", bad)
	}
	// The check sees such packages where they are: the boot harness links
	// all three kinds.
	if bad := hostOnly(deps(t, "go", stock, "", "./qemu/boot")); !slices.Contains(bad, "os/exec") || !slices.Contains(bad, "github.com/tamadump/tamadump/netdump/server") {
		t.Errorf("the check does not see the boot harness's host packages: %v", bad)
	}
	gocmd, err := gobuild.Toolchain()
	if err != nil {
		t.Logf("SKIP the TamaGo image: %v", err)
		return
	}
	d := deps(t, gocmd, gobuild.TamaGoEnv("amd64"), tamago.BuildTags, "./cmd/tamadump")
	if !slices.Contains(d, "github.com/tamadump/tamadump/board/tamago") {
		t.Fatalf("the TamaGo image does not link its board: %v", d)
	}
	if bad := hostOnly(d); len(bad) > 0 {
		t.Errorf("the TamaGo image links host-only packages: %v", bad)
	}
}
