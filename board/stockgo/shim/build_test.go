package shim

import (
	"debug/elf"
	"errors"
	"os/exec"
	"testing"
)

func TestBuild(t *testing.T) {
	if _, err := exec.LookPath("gcc"); err != nil {
		t.Skip("gcc not installed")
	}
	p, err := Build(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	f, err := elf.Open(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	note := false
	for _, ph := range f.Progs {
		if ph.Type == elf.PT_NOTE && ph.Align >= 4 {
			note = true
		}
	}
	if !note || f.Entry != 0x100000 {
		t.Fatalf("entry %#x, PVH note %v", f.Entry, note)
	}
}

func TestBuildWithoutGCC(t *testing.T) {
	t.Setenv("PATH", t.TempDir())
	if _, err := Build(t.TempDir()); !errors.Is(err, ErrNoCompiler) {
		t.Fatalf("err = %v", err)
	}
}
