package goruntime_test

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tamadump/tamadump/board/goruntime"
	"github.com/tamadump/tamadump/qemu/gobuild"
)

func TestEncodeParse(t *testing.T) {
	l := goruntime.Layout{Allp: 0x7a1c40, PMcache: 0x1238, NumSpanClasses: 136, HeapStats: 0x7c3f08, NumGens: 3, NumSizeClasses: 68}
	s := l.Encode()
	if len(s) != len(goruntime.Layout{}.Encode()) {
		t.Fatalf("encodings differ in length: %q", s)
	}
	if got, err := goruntime.Parse(s); err != nil || got != l {
		t.Fatalf("Parse(Encode) = %+v, %v", got, err)
	}
	for _, bad := range []string{"", "1.2", s[1:], strings.Replace(s, "0", "g", 1)} {
		if _, err := goruntime.Parse(bad); err == nil {
			t.Errorf("Parse(%q) accepted", bad)
		}
	}
}

// build builds testdata/count, linked by gobuild (with its layout) or not.
func build(t *testing.T, linked bool) string {
	t.Helper()
	out := filepath.Join(t.TempDir(), "count")
	c := gobuild.Config{Go: "go", Dir: ".", Pkg: "./testdata/count", Out: out, Env: append(os.Environ(), "CGO_ENABLED=0", "GOARCH=amd64")}
	var err error
	if linked {
		err = gobuild.Build(c)
	} else {
		cmd := exec.Command("go", "build", "-o", out, c.Pkg)
		cmd.Env = c.Env
		var o []byte
		if o, err = cmd.CombinedOutput(); err != nil {
			err = errors.New(string(o))
		}
	}
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// TestCount runs a program that allocates five small objects, then three
// tiny ones and a large one: the count sees exactly those, where the
// runtime's own counter misses small objects until their span is flushed.
func TestCount(t *testing.T) {
	out, err := exec.Command(build(t, true)).CombinedOutput()
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	t.Logf("%s", out)
	for _, want := range []string{"small: counted 5,", "tiny and large: counted 4\n"} {
		if !strings.Contains(string(out), want) {
			t.Errorf("output lacks %q", want)
		}
	}
}

// An image linked without its layout says so, rather than counting 0.
func TestNoLayout(t *testing.T) {
	out, err := exec.Command(build(t, false)).CombinedOutput()
	if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 3 || !strings.Contains(string(out), goruntime.ErrNoLayout.Error()) {
		t.Fatalf("%v\n%s", err, out)
	}
}
