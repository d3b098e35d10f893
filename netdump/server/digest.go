package server

import (
	"crypto/sha256"
	"encoding"
	"encoding/hex"
	"fmt"
	"hash"
)

// Digest budget: declared zero runs and holes are hashed as the zeros
// the file reads there, which costs CPU for bytes nobody sent. A session
// may hash zeroBase bytes of them plus zeroRatio per payload byte it
// received; beyond that its SHA-256 is not computed. Tamadump's client
// elides zero pages of a mostly empty RAM well within this; a 24-byte
// message declaring 4 GiB no longer buys seconds of CPU.
const (
	zeroBase  = 1 << 20
	zeroRatio = 64
	// snapEvery: the hash state is saved at these boundaries so that a
	// compressed dump cut back to its header's length after its padding
	// was hashed is hashed again from there, not from 0.
	snapEvery = 64 << 10
)

// zeros feeds zero runs and holes to the hash.
var zeros [64 << 10]byte

// byteSource gives the stored bytes of [off, off+n) (n at most
// len(zeros)), from the write-back buffer or the file.
type byteSource interface {
	stored(off uint64, n int) ([]byte, error)
}

// digest is the SHA-256 of the vmcore, computed in file order as its
// bytes become known: [0, next) is hashed. The bytes of the file never
// change once received (the first arrival wins), so a byte is hashed
// once: on arrival when it lands at next, else read back once when next
// reaches it. Work is proportional to the bytes received.
type digest struct {
	h        hash.Hash
	zeroHash interface{ Add(float64) } // counts the zeros hashed
	next     uint64
	zeroLeft uint64 // zero bytes that may still be hashed
	failed   string // why the digest is not computed; "" while it is

	snap    []byte // hash state at snapAt
	snapAt  uint64
	prev    []byte // the snapshot before it
	prevAt  uint64
	haveSnp int
}

func newDigest(zeroHash interface{ Add(float64) }) *digest {
	d := &digest{h: sha256.New(), zeroHash: zeroHash, zeroLeft: zeroBase}
	d.snapshot()
	return d
}

// earn grants the zero budget of n payload bytes received.
func (d *digest) earn(n int) { d.zeroLeft += uint64(n) * zeroRatio }

func (d *digest) fail(format string, args ...any) {
	if d.failed == "" {
		d.failed = fmt.Sprintf(format, args...)
	}
}

// advance hashes forward from next through what cov holds, reading data
// ranges from src. With final, ranges never received below size are
// holes and hashed as zeros, and hashing stops at size.
func (d *digest) advance(cov *spans, src byteSource, final bool, size uint64) {
	for d.failed == "" {
		r, ok := cov.at(d.next)
		if !ok {
			if !final || d.next >= size {
				return
			}
			// A hole up to the next range (or the end).
			r = span{d.next, size, zeroKind}
			if n, ok := cov.after(d.next); ok && n.start < size {
				r.end = n.start
			}
		}
		end := r.end
		if final {
			end = min(end, size)
			if end <= d.next {
				return
			}
		}
		if r.kind == zeroKind {
			n := end - d.next
			if n > d.zeroLeft {
				d.fail("not computed (declared zeros and holes exceed %d times the data received)", zeroRatio)
				return
			}
			d.zeroLeft -= n
			d.zeroHash.Add(float64(n))
			for n > 0 {
				k := min(n, uint64(len(zeros)))
				d.write(zeros[:k])
				n -= k
			}
			continue
		}
		for d.next < end {
			k := int(min(end-d.next, uint64(len(zeros))))
			b, err := src.stored(d.next, k)
			if err != nil {
				d.fail("not computed (%s)", strerror(err))
				return
			}
			d.write(b)
		}
	}
}

// write hashes b at next, saving the state at snapshot boundaries.
func (d *digest) write(b []byte) {
	for len(b) > 0 {
		k := len(b)
		if left := snapEvery - d.next%snapEvery; uint64(k) > left {
			k = int(left)
		}
		d.h.Write(b[:k])
		d.next += uint64(k)
		b = b[k:]
		if d.next%snapEvery == 0 {
			d.snapshot()
		}
	}
}

func (d *digest) snapshot() {
	d.prev, d.snap = d.snap, d.prev
	d.prevAt = d.snapAt
	var err error
	d.snap, err = d.h.(encoding.BinaryAppender).AppendBinary(d.snap[:0])
	if err != nil {
		d.fail("not computed (%s)", err)
		return
	}
	d.snapAt = d.next
	d.haveSnp = min(d.haveSnp+1, 2)
}

// truncated notes that the file was cut to size. When bytes beyond it
// were hashed already, the hash restarts from a saved state at or below
// size, if one is at hand.
func (d *digest) truncated(size uint64) {
	if d.failed != "" || size >= d.next {
		return
	}
	for i, at := range []uint64{d.snapAt, d.prevAt} {
		if i < d.haveSnp && at <= size {
			state := d.snap
			if i == 1 {
				state = d.prev
			}
			if err := d.h.(encoding.BinaryUnmarshaler).UnmarshalBinary(state); err != nil {
				break
			}
			d.next = at
			d.haveSnp = 0
			return
		}
	}
	d.fail("not computed (the file was cut to %d bytes after %d were hashed)", size, d.next)
}

// sum is the SHA256 line's value.
func (d *digest) sum() string {
	if d.failed != "" {
		return d.failed
	}
	return hex.EncodeToString(d.h.Sum(nil))
}
