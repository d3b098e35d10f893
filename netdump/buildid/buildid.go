// Package buildid names a Go program by its build ID: the GNU build-id
// note (NT_GNU_BUILD_ID) that Go's linker derives from the Go build ID
// and writes into every ELF executable unless linked with -B none. A
// vmcore that carries the ID names the one binary that can read it.
//
// The linker puts its notes in the page in front of .text, the page that
// also holds the ELF and program headers and is part of the first PT_LOAD
// segment. So the same bytes are at offset 0 of the file and, in the
// running program, at the page below runtime.text, whichever loader
// placed the segments (QEMU for a TamaGo image, the shim for stock Go).
// Self reads them from memory, File from the file, and both look for the
// note the same way (Find).
package buildid

import (
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
)

// ID is a build ID.
type ID []byte

// String is the ID in lower-case hex, as readelf and gdb print it.
func (id ID) String() string { return hex.EncodeToString(id) }

// Parse reads an ID from its hex form.
func Parse(s string) (ID, error) {
	b, err := hex.DecodeString(s)
	if err != nil || len(b) < MinSize || len(b) > MaxSize {
		return nil, fmt.Errorf("buildid: %q is not a build ID (%d to %d bytes in hex)", s, MinSize, MaxSize)
	}
	return b, nil
}

// Sizes of a build ID: Go's linker makes 20 bytes (as GNU ld's SHA-1
// style); -B 0x... accepts up to 32.
const (
	MinSize = 8
	MaxSize = 32
)

// Label precedes an ID in a version string (the image's KDH version
// string ends with "build-id <hex>").
const Label = "build-id "

// PageSize is the header page the linker writes its notes into.
const PageSize = 4096

// NoteType is NT_GNU_BUILD_ID; its note name is "GNU".
const NoteType = 3

// Errors.
var (
	ErrNotELF = errors.New("buildid: no ELF header where the program's headers should be")
	ErrNone   = errors.New("buildid: no GNU build-id note (was the program linked with -B none?)")
)

// Find returns the ID in a header page: the bytes from an ELF header up
// to the start of .text. It scans the page for the note rather than
// following PT_NOTE, because the build-id note need not be covered by a
// PT_NOTE segment (a TamaGo image's PT_NOTE holds only its PVH entry
// note). The result aliases page.
func Find(page []byte) (ID, error) {
	if !bytes.HasPrefix(page, []byte("\x7fELF")) {
		return nil, ErrNotELF
	}
	le := binary.LittleEndian
	for at := 0; at+16 <= len(page); at += 4 {
		h := page[at:]
		if le.Uint32(h) != 4 || le.Uint32(h[8:]) != NoteType || string(h[12:16]) != "GNU\x00" {
			continue
		}
		n := int(le.Uint32(h[4:]))
		if n < MinSize || n > MaxSize || 16+n > len(h) {
			continue
		}
		return ID(h[16 : 16+n]), nil
	}
	return nil, ErrNone
}

// File returns the ID of the ELF executable at path.
func File(path string) (ID, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	page := make([]byte, PageSize)
	n, err := io.ReadFull(f, page)
	if err != nil && err != io.ErrUnexpectedEOF {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	id, err := Find(page[:n])
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return id, nil
}
