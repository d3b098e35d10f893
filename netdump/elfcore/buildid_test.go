package elfcore

import (
	"bytes"
	"debug/elf"
	"encoding/binary"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// notesOf returns the notes of a core as name/type -> desc, and whether
// PT_NOTE held nothing but well-formed notes.
func notesOf(t *testing.T, c *Core) (map[string][]byte, bool) {
	t.Helper()
	f, err := elf.NewFile(io.NewSectionReader(c, 0, c.Size()))
	if err != nil {
		t.Fatal(err)
	}
	var b []byte
	for _, p := range f.Progs {
		if p.Type == elf.PT_NOTE {
			b, _ = io.ReadAll(p.Open())
		}
	}
	le := binary.LittleEndian
	m := map[string][]byte{}
	for len(b) > 0 {
		if len(b) < 12 {
			return m, false
		}
		nl, dl, typ := int(le.Uint32(b)), int(le.Uint32(b[4:])), le.Uint32(b[8:])
		d := 12 + roundUp(nl, 4)
		if nl == 0 || d+roundUp(dl, 4) > len(b) {
			return m, false
		}
		m[fmt.Sprintf("%s/%d", b[12:12+nl-1], typ)] = b[d : d+dl]
		b = b[d+roundUp(dl, 4):]
	}
	return m, true
}

func TestBuildIDNote(t *testing.T) {
	id := []byte{0x15, 0x94, 0x8a, 0x99, 0xed, 0x28, 0x5f, 0xdd, 0xf1, 0x15, 0x08, 0x02, 0xb7, 0x64, 0x40, 0xc5, 0x41, 0x39, 0xdb, 0x66}
	c := New(4)
	if err := c.Build(segments(&AMD64), &Info{Arch: &AMD64, Panic: []byte("boom"), BuildID: id}); err != nil {
		t.Fatal(err)
	}
	notes, clean := notesOf(t, c)
	if got := notes[fmt.Sprintf("TAMADUMP/%d", NoteBuildID)]; !bytes.Equal(got, id) || !clean {
		t.Fatalf("build-id note %x (PT_NOTE well-formed: %v), want %x", got, clean, id)
	}
	// readelf, when installed, agrees.
	if _, err := exec.LookPath("readelf"); err == nil {
		path := filepath.Join(t.TempDir(), "core")
		whole := make([]byte, c.Size())
		c.ReadAt(whole, 0)
		os.WriteFile(path, whole, 0o600)
		out, _ := exec.Command("readelf", "-n", path).CombinedOutput()
		if !strings.Contains(string(out), "description data: 15 94 8a 99 ed 28 5f dd f1 15 08 02 b7 64 40 c5 41 39 db 66") {
			t.Errorf("readelf -n does not show the build ID:\n%s", out)
		}
		// No note has NT_PRPSINFO's type without being one: Delve
		// tells notes apart by type alone.
		if strings.Contains(string(out), "NT_PRPSINFO") || strings.Contains(string(out), "NT_GNU_BUILD_ID") {
			t.Errorf("readelf -n sees a note of type 3:\n%s", out)
		}
	}

	// Without an ID there is no note, and PT_NOTE still ends with the
	// last note.
	if err := c.Build(segments(&AMD64), &Info{Arch: &AMD64, Panic: []byte("boom")}); err != nil {
		t.Fatal(err)
	}
	notes, clean = notesOf(t, c)
	if _, ok := notes[fmt.Sprintf("TAMADUMP/%d", NoteBuildID)]; ok || !clean || len(notes) != 2 {
		t.Fatalf("notes without an ID: %d notes, well-formed %v", len(notes), clean)
	}
}

func TestBuildIDNoAllocation(t *testing.T) {
	segs := segments(&AMD64)
	c := New(8)
	info := &Info{Arch: &AMD64, Panic: []byte("x"), BuildID: bytes.Repeat([]byte{1}, 20)}
	if n := testing.AllocsPerRun(100, func() { c.Build(segs, info) }); n != 0 {
		t.Fatalf("%v allocations per build", n)
	}
}
