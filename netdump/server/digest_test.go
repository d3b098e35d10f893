package server

import (
	"crypto/sha256"
	"encoding/hex"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"
)

type discard struct{}

func (discard) Add(float64) {}

// TestHashLag: while the hasher works through a long declared zero run,
// the session goes on handing write-back buffers, four times as many as
// the pipeline holds, so a hasher that is behind never holds back the
// receive path (and its ACKs); the data it was not handed is hashed from
// the file afterwards, and the digest is the file's.
func TestHashLag(t *testing.T) {
	f, err := os.Create(filepath.Join(t.TempDir(), "vmcore"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var dirty atomic.Bool
	d := newDigest(f, &dirty, discard{}, discard{}, func() bool { return false })
	const zero = 1 << 30
	cov := newSpans()
	cov.add(0, zero, zeroKind)
	d.earn(zero / zeroRatio)
	d.advance(cov, nil, false, 0)
	pattern := make([]byte, writeBack)
	for j := range pattern {
		pattern[j] = byte(j * 13)
	}
	var data []byte
	off := uint64(zero)
	for i := range 4 * hashBufs {
		w := d.buffer()
		w.b = append(w.b, pattern...)
		w.b[0] = byte(i) // each buffer its own bytes
		data = append(data, w.b...)
		cov.add(off, off+writeBack, dataKind)
		d.hand(w, off, cov)
		off += writeBack
	}
	if h := d.hashed.Load(); h >= zero {
		t.Errorf("the session handed %d buffers only once the hasher was done with the zero run (at %d)", 4*hashBufs, h)
	}
	want := sha256.New()
	for range zero / len(zeros) {
		want.Write(zeros[:])
	}
	want.Write(data)
	d.advance(cov, nil, true, off)
	d.drain()
	if got, want := d.sum(), hex.EncodeToString(want.Sum(nil)); got != want {
		t.Errorf("digest %s, the file's %s", got, want)
	}
	d.stop()
}
