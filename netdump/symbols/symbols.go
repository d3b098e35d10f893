// Package symbols is a symbols directory: every image ELF that was built,
// kept under its build ID, so that the analysis of a vmcore finds the one
// executable that reads it without anyone knowing which build crashed.
//
// Layout: DIR/<build-id>/<file name>, for example
// build/symbols/15948a99ed285fddf1150802b76440c54139db66/tamadump-stockgo.elf.
package symbols

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/tamadump/tamadump/netdump/buildid"
)

// ErrNotFound is wrapped by Find when no executable has the ID.
var ErrNotFound = errors.New("not in the symbols directory")

// Store copies the ELF executable at path into dir under its build ID
// (creating dir) and returns where it is kept. A build already stored
// stays as it is.
func Store(dir, path string) (string, error) {
	id, err := buildid.File(path)
	if err != nil {
		return "", err
	}
	sub := filepath.Join(dir, id.String())
	if err := os.MkdirAll(sub, 0o755); err != nil {
		return "", err
	}
	dst := filepath.Join(sub, filepath.Base(path))
	if have, err := buildid.File(dst); err == nil && bytes.Equal(have, id) {
		return dst, nil
	}
	// Copied, not linked: the next build may rewrite the original in
	// place. A temporary name and a rename keep a half-written copy from
	// ever being found.
	src, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer src.Close()
	tmp, err := os.CreateTemp(sub, ".store-")
	if err != nil {
		return "", err
	}
	defer os.Remove(tmp.Name())
	if _, err := io.Copy(tmp, src); err != nil {
		tmp.Close()
		return "", err
	}
	if err := tmp.Chmod(0o755); err != nil {
		tmp.Close()
		return "", err
	}
	if err := tmp.Close(); err != nil {
		return "", err
	}
	return dst, os.Rename(tmp.Name(), dst)
}

// Find returns the executable with build ID id in dir.
func Find(dir string, id buildid.ID) (string, error) {
	sub := filepath.Join(dir, id.String())
	entries, err := os.ReadDir(sub)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return "", err
	}
	for _, e := range entries {
		if !e.Type().IsRegular() || e.Name()[0] == '.' {
			continue
		}
		p := filepath.Join(sub, e.Name())
		if have, err := buildid.File(p); err == nil && bytes.Equal(have, id) {
			return p, nil
		}
	}
	return "", fmt.Errorf("build-id %s: %w %s", id, ErrNotFound, dir)
}
