package server

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"hash"
	"io"
	"sort"
	"strings"
)

// maxMissingListed caps the ranges named in "Missing ranges:".
const maxMissingListed = 16

// maxRehash bounds how much of the vmcore is read back at completion to
// finish its SHA-256 (bytes not hashed while arriving in order).
const maxRehash = 64 << 30

type span struct{ start, end uint64 } // [start, end)

// rangeSet is a set of byte ranges: sorted, disjoint, non-adjacent. Dumps
// arrive in order, so adding is O(1) in practice.
type rangeSet struct{ r []span }

func (s *rangeSet) add(start, end uint64) {
	if start >= end {
		return
	}
	n := len(s.r)
	if n == 0 || start > s.r[n-1].end {
		s.r = append(s.r, span{start, end})
		return
	}
	if start >= s.r[n-1].start {
		s.r[n-1].end = max(s.r[n-1].end, end)
		return
	}
	// i: first span touching or after start; j: first span after end.
	i := sort.Search(n, func(k int) bool { return s.r[k].end >= start })
	j := sort.Search(n, func(k int) bool { return s.r[k].start > end })
	if i == j {
		s.r = append(s.r, span{})
		copy(s.r[i+1:], s.r[i:])
		s.r[i] = span{start, end}
		return
	}
	merged := span{min(start, s.r[i].start), max(end, s.r[j-1].end)}
	s.r[i] = merged
	s.r = append(s.r[:i+1], s.r[j:]...)
}

// missing describes the gaps of [0, limit): "none", or up to max ranges
// as inclusive hex bounds followed by how many more there are.
func (s *rangeSet) missing(limit uint64, max int) string {
	var gaps []string
	more := 0
	note := func(a, b uint64) {
		if a >= b {
			return
		}
		if len(gaps) < max {
			gaps = append(gaps, fmt.Sprintf("%#x-%#x", a, b-1))
		} else {
			more++
		}
	}
	next := uint64(0)
	for _, r := range s.r {
		if r.start >= limit {
			break
		}
		note(next, r.start)
		next = r.end
	}
	note(next, limit)
	switch {
	case len(gaps) == 0:
		return "none"
	case more > 0:
		return fmt.Sprintf("%s, ... (%d more)", strings.Join(gaps, ", "), more)
	}
	return strings.Join(gaps, ", ")
}

// zeros feeds zero runs (holes) to the hash.
var zeros [64 << 10]byte

// runningSum hashes the vmcore while it is written strictly in order, so
// that completion normally only reads back the tail not yet hashed.
type runningSum struct {
	h      hash.Hash
	next   uint64 // [0, next) is hashed
	end    uint64 // highest end of anything written or declared
	broken bool   // bytes below next changed: rehash from 0
}

func (r *runningSum) init() { r.h = sha256.New() }

// add notes that [off, off+n) now holds data (nil: zeros, a hole).
func (r *runningSum) add(off, n uint64, data []byte) {
	switch {
	case off < r.next:
		r.broken = true
	case !r.broken && off == r.next && r.next == r.end:
		// Never written beyond end, so a declared zero run is a hole.
		if data != nil {
			r.h.Write(data)
		} else {
			writeZeros(r.h, n)
		}
		r.next += n
	}
	r.end = max(r.end, off+n)
}

func writeZeros(w io.Writer, n uint64) {
	for n > 0 {
		k := min(n, uint64(len(zeros)))
		w.Write(zeros[:k])
		n -= k
	}
}

// truncated notes that the file was cut (or extended) to size.
func (r *runningSum) truncated(size uint64) {
	if size < r.next {
		r.broken = true
	}
	r.end = max(r.end, size)
}

// finish returns the hex SHA-256 of the file's first size bytes, reading
// back what was not hashed on arrival (holes read as zeros).
func (r *runningSum) finish(f io.ReaderAt, size int64) string {
	if r.broken || int64(r.next) > size {
		r.h.Reset()
		r.next = 0
	}
	if size-int64(r.next) > maxRehash {
		return fmt.Sprintf("not computed (%d bytes to read back)", size-int64(r.next))
	}
	buf := make([]byte, 1<<20)
	for off := int64(r.next); off < size; {
		k := min(int64(len(buf)), size-off)
		n, err := f.ReadAt(buf[:k], off)
		r.h.Write(buf[:n])
		off += int64(n)
		if err == io.EOF && n < int(k) {
			// Shorter than we made it (should not happen): the rest
			// would read as zeros after a truncate up.
			writeZeros(r.h, uint64(size-off))
			break
		}
		if err != nil && err != io.EOF {
			return fmt.Sprintf("not computed (%s)", strerror(err))
		}
	}
	return hex.EncodeToString(r.h.Sum(nil))
}
