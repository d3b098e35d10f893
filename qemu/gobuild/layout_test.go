package gobuild

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestReadLayout reads the layout from a program built with the stock
// toolchain (go test's own binary has no DWARF) and checks what Go 1.26
// is known to have: 68 size classes, twice as many span classes, three
// generations of heap statistics, 8-byte counters side by side.
// Build then links the program with it, and the image's init check
// (goruntime.Use against runtime.ReadMemStats) passes there.
func TestReadLayout(t *testing.T) {
	dir := t.TempDir()
	plain := filepath.Join(dir, "plain")
	cmd := exec.Command("go", "build", "-o", plain, "../../board/goruntime/testdata/count")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	l, err := ReadLayout(plain)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%+v", l)
	if l.NumSizeClasses != 68 || l.NumSpanClasses != 136 || l.NumGens != 3 || l.DeltaSize%8 != 0 ||
		l.SpanAllocCountBeforeCache == l.SpanAllocCount || l.SmallAllocCount != l.LargeAllocCount+8 || l.Allp == 0 || l.HeapStats == 0 {
		t.Errorf("unexpected layout %+v", l)
	}

	linked := filepath.Join(dir, "linked")
	if err := Build(Config{Go: "go", Dir: "../..", Pkg: "./board/goruntime/testdata/count", Out: linked, Env: append(os.Environ(), "GOARCH=amd64")}); err != nil {
		t.Fatal(err)
	}
	// Addresses differ between builds (the plain one is not -trimpath),
	// offsets do not.
	l2, err := ReadLayout(linked)
	l2.Allp, l2.HeapStats, l.Allp, l.HeapStats = 0, 0, 0, 0
	if err != nil || l2 != l {
		t.Errorf("the linked program's offsets %+v (%v), the plain one's %+v", l2, err, l)
	}
	out, err := exec.Command(linked).CombinedOutput()
	if err != nil || !strings.Contains(string(out), "small: counted 5,") {
		t.Errorf("%v\n%s", err, out)
	}

	// A binary without DWARF is refused with a reason.
	stripped := filepath.Join(dir, "stripped")
	cmd = exec.Command("go", "build", "-ldflags=-w", "-o", stripped, "../../board/goruntime/testdata/count")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	if _, err := ReadLayout(stripped); err == nil || !strings.Contains(err.Error(), "-ldflags=-w") {
		t.Errorf("ReadLayout of a binary without DWARF: %v", err)
	}
}
