package goruntime_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tamadump/tamadump/qemu/gobuild"
)

// TestCountARM is TestCount for a 32-bit arm program (4-byte words and
// tinyAllocs, 8-byte heap counters), run under qemu-arm: the layout read
// from its DWARF counts exactly what it allocates.
func TestCountARM(t *testing.T) {
	qemu, err := exec.LookPath("qemu-arm")
	if err != nil {
		t.Skip("SKIP: qemu-arm is not installed (apt-get install qemu-user; make deps does)")
	}
	out := filepath.Join(t.TempDir(), "count")
	c := gobuild.Config{Go: "go", Dir: ".", Pkg: "./testdata/count", Out: out,
		Env: append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOARCH=arm", "GOARM=7")}
	if err := gobuild.Build(c); err != nil {
		t.Fatal(err)
	}
	l, err := gobuild.ReadLayout(out)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%+v", l)
	o, err := exec.Command(qemu, out).CombinedOutput()
	if err != nil {
		t.Fatalf("%v\n%s", err, o)
	}
	t.Logf("%s", o)
	for _, want := range []string{"small: counted 5,", "tiny and large: counted 4\n"} {
		if !strings.Contains(string(o), want) {
			t.Errorf("output lacks %q", want)
		}
	}
}
