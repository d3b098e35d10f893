package symbols

import (
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/tamadump/tamadump/netdump/buildid"
)

// The test binary is an ELF with a build ID: stored, it is found by that
// ID, and only by it.
func TestStoreFind(t *testing.T) {
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	id, err := buildid.File(exe)
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(t.TempDir(), "symbols")
	kept, err := Store(dir, exe)
	if err != nil {
		t.Fatal(err)
	}
	if want := filepath.Join(dir, id.String(), filepath.Base(exe)); kept != want {
		t.Fatalf("stored at %s, want %s", kept, want)
	}
	again, err := Store(dir, exe)
	if err != nil || again != kept {
		t.Fatalf("storing again: %s, %v", again, err)
	}
	got, err := Find(dir, id)
	if err != nil || got != kept {
		t.Fatalf("Find = %s, %v", got, err)
	}
	other := append(buildid.ID(nil), id...)
	other[0] ^= 0xff
	if _, err := Find(dir, other); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Find(other) = %v", err)
	}
	// A file in the right place that is another build is not it.
	if err := os.MkdirAll(filepath.Join(dir, other.String()), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Link(kept, filepath.Join(dir, other.String(), "impostor.elf")); err != nil {
		t.Fatal(err)
	}
	if p, err := Find(dir, other); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Find(other) = %s, %v: an impostor was taken", p, err)
	}
	if _, err := Store(dir, filepath.Join(dir, "missing")); err == nil {
		t.Fatal("storing a missing file succeeded")
	}
}
