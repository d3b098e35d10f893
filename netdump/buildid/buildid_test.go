package buildid

import (
	"bytes"
	"debug/elf"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// The test binary reads its own ID from memory; it is the one readelf's
// view of the file (debug/elf's section) holds.
func TestSelfIsTheFilesNote(t *testing.T) {
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	self, err := Self()
	if err != nil {
		t.Fatal(err)
	}
	file, err := File(exe)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(self, file) {
		t.Fatalf("Self %s, File %s", self, file)
	}
	if want := sectionID(t, exe); !bytes.Equal(self, want) {
		t.Fatalf("Self %s, .note.gnu.build-id %x", self, want)
	}
}

// sectionID reads the note through the section table, independently of
// Find.
func sectionID(t *testing.T, path string) []byte {
	f, err := elf.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	s := f.Section(".note.gnu.build-id")
	if s == nil {
		t.Fatal("no .note.gnu.build-id section")
	}
	b, err := s.Data()
	if err != nil {
		t.Fatal(err)
	}
	return b[16:] // namesz, descsz, type, "GNU\0"
}

// Two builds of different programs have different IDs; -B none leaves
// none.
func TestBuilds(t *testing.T) {
	if testing.Short() {
		t.Skip("builds programs")
	}
	dir := t.TempDir()
	build := func(name, src string, ldflags ...string) string {
		srcDir := filepath.Join(dir, name+"-src")
		os.MkdirAll(srcDir, 0o755)
		os.WriteFile(filepath.Join(srcDir, "go.mod"), []byte("module "+name+"\ngo 1.26\n"), 0o644)
		os.WriteFile(filepath.Join(srcDir, "main.go"), []byte(src), 0o644)
		out := filepath.Join(dir, name)
		args := append([]string{"build", "-o", out}, ldflags...)
		cmd := exec.Command("go", append(args, ".")...)
		cmd.Dir = srcDir
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOFLAGS=")
		if b, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("go build: %v\n%s", err, b)
		}
		return out
	}
	a := build("a", "package main\nfunc main() { println(1) }\n")
	b := build("b", "package main\nfunc main() { println(2) }\n")
	none := build("none", "package main\nfunc main() { println(3) }\n", "-ldflags=-B none")
	idA, errA := File(a)
	idB, errB := File(b)
	if errA != nil || errB != nil {
		t.Fatal(errA, errB)
	}
	if bytes.Equal(idA, idB) {
		t.Fatalf("two programs share the ID %s", idA)
	}
	if !bytes.Equal(idA, sectionID(t, a)) {
		t.Fatalf("File %s is not the section's %x", idA, sectionID(t, a))
	}
	if _, err := File(none); !errors.Is(err, ErrNone) {
		t.Fatalf("-B none: %v, want ErrNone", err)
	}
}

func TestFind(t *testing.T) {
	page := make([]byte, PageSize)
	copy(page, "\x7fELF")
	if _, err := Find(page); !errors.Is(err, ErrNone) {
		t.Fatalf("empty page: %v", err)
	}
	note := []byte{4, 0, 0, 0, 20, 0, 0, 0, 3, 0, 0, 0, 'G', 'N', 'U', 0}
	id := bytes.Repeat([]byte{0xab}, 20)
	copy(page[PageSize-36:], append(note, id...))
	got, err := Find(page)
	if err != nil || !bytes.Equal(got, id) {
		t.Fatalf("Find = %x, %v", got, err)
	}
	// A note whose descriptor would run past the page is not one.
	if _, err := Find(page[:PageSize-1]); !errors.Is(err, ErrNone) {
		t.Fatalf("cut note: %v", err)
	}
	if _, err := Find(page[4:]); !errors.Is(err, ErrNotELF) {
		t.Fatalf("no ELF header: %v", err)
	}
}

func TestParse(t *testing.T) {
	id, err := Parse("15948a99ed285fddf1150802b76440c54139db66")
	if err != nil || id.String() != "15948a99ed285fddf1150802b76440c54139db66" {
		t.Fatalf("Parse = %s, %v", id, err)
	}
	for _, bad := range []string{"", "xyz", "abcd", "../../etc", "15948a99ed285fddf1150802b76440c54139db6"} {
		if _, err := Parse(bad); err == nil {
			t.Errorf("Parse(%q) accepted", bad)
		}
	}
}
