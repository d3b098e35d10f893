package server

import (
	"fmt"
	"strings"

	"github.com/google/btree"
)

// kind says how a byte range of the vmcore was received.
type kind uint8

const (
	gap      kind = iota // never received
	dataKind             // bytes that came in VMCORE payloads
	zeroKind             // a declared zero run (nothing written: a hole)
)

type span struct {
	start, end uint64 // [start, end)
	kind       kind
}

func spanLess(a, b span) bool { return a.start < b.start }

// spans is a set of disjoint byte ranges, each of a kind; neighbours of
// the same kind are merged. It lives in a B-tree, so that finding the
// range at an offset and adding one cost O(log n) however the ranges
// arrive (a sorted slice costs O(n) per insertion at the front: 1-byte
// VMCOREs at decreasing offsets made coverage quadratic).
type spans struct {
	t       *btree.BTreeG[span]
	touched []span // scratch for add
}

func newSpans() *spans {
	return &spans{t: btree.NewG(16, spanLess)}
}

// Len is the number of ranges held.
func (s *spans) Len() int { return s.t.Len() }

// at returns the range holding off.
func (s *spans) at(off uint64) (span, bool) {
	var found span
	ok := false
	s.t.DescendLessOrEqual(span{start: off}, func(r span) bool {
		found, ok = r, r.end > off
		return false
	})
	return found, ok
}

// after returns the first range starting at or after off.
func (s *spans) after(off uint64) (span, bool) {
	var found span
	ok := false
	s.t.AscendGreaterOrEqual(span{start: off}, func(r span) bool {
		found, ok = r, true
		return false
	})
	return found, ok
}

// end is the end of the highest range (0 when empty).
func (s *spans) end() uint64 {
	if r, ok := s.t.Max(); ok {
		return r.end
	}
	return 0
}

// overlaps reports whether any range intersects [start, end).
func (s *spans) overlaps(start, end uint64) bool {
	if start >= s.end() {
		return false // the common case: a dump arriving in order
	}
	if r, ok := s.at(start); ok && r.end > start {
		return true
	}
	r, ok := s.after(start)
	return ok && r.start < end
}

// visit calls f for the pieces of [start, end) in order: each is a part
// of an existing range (its kind) or a gap. The work is proportional to
// the number of pieces, which callers bound by the message's length.
func (s *spans) visit(start, end uint64, f func(a, b uint64, k kind)) {
	next := start
	if r, ok := s.at(start); ok {
		b := min(r.end, end)
		f(start, b, r.kind)
		next = b
	}
	if next < end {
		s.t.AscendRange(span{start: next}, span{start: end}, func(r span) bool {
			if r.start > next {
				f(next, r.start, gap)
			}
			b := min(r.end, end)
			f(r.start, b, r.kind)
			next = b
			return true
		})
	}
	if next < end {
		f(next, end, gap)
	}
}

// add marks the gaps of [start, end) as k; parts already held keep
// their kind (the first arrival wins). Neighbours of kind k merge.
func (s *spans) add(start, end uint64, k kind) {
	if start >= end {
		return
	}
	// In order: at or beyond the last range, which grows when it is
	// adjacent and of the same kind.
	if last, ok := s.t.Max(); !ok || start >= last.end {
		if ok && last.end == start && last.kind == k {
			last.end = end
			s.t.ReplaceOrInsert(last)
		} else {
			s.t.ReplaceOrInsert(span{start, end, k})
		}
		return
	}
	// Every range touching [start, end), adjacency included.
	t := s.touched[:0]
	if r, ok := s.at(start); ok {
		t = append(t, r)
	} else if start > 0 {
		if r, ok := s.at(start - 1); ok {
			t = append(t, r)
		}
	}
	from := start
	if len(t) > 0 {
		from = t[0].start + 1
	}
	s.t.AscendRange(span{start: from}, span{start: end + 1}, func(r span) bool {
		t = append(t, r)
		return true
	})
	s.touched = t
	// Rebuild the union of what was touched and [start, end): the
	// touched ranges as they were, the gaps between them as k.
	var out span
	have := false
	emit := func(r span) {
		if have && out.kind == r.kind && out.end == r.start {
			out.end = r.end
			return
		}
		if have {
			s.t.ReplaceOrInsert(out)
		}
		out, have = r, true
	}
	for _, r := range t {
		s.t.Delete(r)
	}
	next := start
	for _, r := range t {
		if r.start > next && next < end {
			emit(span{next, min(r.start, end), k})
		}
		emit(r)
		next = max(next, r.end)
	}
	if next < end {
		emit(span{next, end, k})
	}
	s.t.ReplaceOrInsert(out)
}

// truncate drops everything at or beyond size.
func (s *spans) truncate(size uint64) {
	for {
		r, ok := s.t.Max()
		if !ok || r.end <= size {
			return
		}
		s.t.Delete(r)
		if r.start < size {
			r.end = size
			s.t.ReplaceOrInsert(r)
			return
		}
	}
}

// describe lists the byte ranges of [0, limit) not held (missing=true)
// or held (missing=false) as "none" or up to max inclusive hex ranges
// followed by how many more there are.
func (s *spans) describe(limit uint64, missing bool, max int) string {
	var b strings.Builder
	n := 0
	note := func(a, e uint64) {
		if a >= e {
			return
		}
		if n < max {
			if n > 0 {
				b.WriteString(", ")
			}
			fmt.Fprintf(&b, "%#x-%#x", a, e-1)
		}
		n++
	}
	next := uint64(0)
	s.t.Ascend(func(r span) bool {
		if r.start >= limit {
			return false
		}
		if missing {
			note(next, r.start)
		} else {
			note(r.start, min(r.end, limit))
		}
		next = r.end
		return true
	})
	if missing {
		note(next, limit)
	}
	switch {
	case n == 0:
		return "none"
	case n > max:
		fmt.Fprintf(&b, ", ... (%d more)", n-max)
	}
	return b.String()
}
