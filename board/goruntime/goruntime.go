// Package goruntime counts the Go runtime's heap allocations exactly, by
// reading the runtime's own structures without taking any lock, so that
// the panic path can show how many allocations happened after the crash
// (board.Dumper takes the count at the crash and again when asked).
//
// Why this count is exact: every heap allocation is either
//   - a small object (size class spans): the P's mcache hands out a slot
//     of its cached span and the span's allocCount goes up; when the span
//     leaves the mcache (refill, or a flush by the garbage collector or
//     ReadMemStats), allocCount - allocCountBeforeCache is added to the
//     heap's smallAllocCount, so cached-span deltas plus smallAllocCount
//     is the total at every instant;
//   - a tiny one (noscan, under 16 bytes, packed into a 16-byte block):
//     the block is a small object, and each allocation served from an
//     existing block adds one to the mcache's tinyAllocs, flushed into
//     tinyAllocCount in the same way;
//   - a large one (over 32 KiB, a span of its own): largeAllocCount goes
//     up at once.
//
// The heap's counters (runtime.memstats.heapStats) are a ring of three
// generations that readers rotate and merge; their sum is the total
// whatever the rotation. That is what MemStats.Mallocs and
// /gc/heap/allocs:objects report, except that those see cached spans only
// once they are flushed (a program that makes five 300-byte allocations
// reads a difference of 0 there), and flushing stops the world, which a
// crashed machine cannot do. Mallocs adds the cached deltas of every P's
// mcache (runtime.allp) itself, with plain loads.
//
// The offsets and addresses come from the image's own DWARF: qemu/gobuild
// links the image once, reads them, and links it again with them in
// layout (-X). An image built otherwise, or for another architecture than
// amd64 and 32-bit arm (Supported), has no count: Mallocs says why instead
// of reporting 0.
package goruntime

import (
	"errors"
	"runtime"
	"strconv"
	"strings"
	"unsafe"
)

// Layout is where the runtime keeps the allocation counters: addresses
// of its variables and offsets into its types, as the image's DWARF has
// them.
type Layout struct {
	Allp                      uintptr // &runtime.allp ([]*p)
	PMcache                   uintptr // p.mcache (*mcache)
	McacheAlloc               uintptr // mcache.alloc ([NumSpanClasses]*mspan)
	NumSpanClasses            uintptr
	McacheTinyAllocs          uintptr // mcache.tinyAllocs (uintptr)
	SpanAllocCount            uintptr // mspan.allocCount (uint16)
	SpanAllocCountBeforeCache uintptr // mspan.allocCountBeforeCache (uint16)
	HeapStats                 uintptr // &runtime.memstats.heapStats.stats ([NumGens]heapStatsDelta)
	NumGens                   uintptr
	DeltaSize                 uintptr // heapStatsDelta's size
	TinyAllocCount            uintptr // heapStatsDelta.tinyAllocCount (uint64)
	LargeAllocCount           uintptr // heapStatsDelta.largeAllocCount (uint64)
	SmallAllocCount           uintptr // heapStatsDelta.smallAllocCount ([NumSizeClasses]uint64)
	NumSizeClasses            uintptr
}

// Symbol is the variable qemu/gobuild sets with -X.
const Symbol = "github.com/tamadump/tamadump/board/goruntime.layout"

// layout is Layout.Encode of the image's runtime, set by the linker.
var layout string

const fields = 14 // Layout's

// Encode is the Layout as the linker sets it: fixed-width fields, so that
// every Layout, the zero one too, has the same length and the two links of
// qemu/gobuild lay the image out alike.
func (l Layout) Encode() string {
	v := l.values()
	var b []byte
	for i, x := range v {
		if i > 0 {
			b = append(b, '.')
		}
		s := strconv.FormatUint(uint64(*x), 16)
		b = append(b, strings.Repeat("0", 16-len(s))...)
		b = append(b, s...)
	}
	return string(b)
}

func (l *Layout) values() [fields]*uintptr {
	return [fields]*uintptr{&l.Allp, &l.PMcache, &l.McacheAlloc, &l.NumSpanClasses, &l.McacheTinyAllocs,
		&l.SpanAllocCount, &l.SpanAllocCountBeforeCache, &l.HeapStats, &l.NumGens, &l.DeltaSize,
		&l.TinyAllocCount, &l.LargeAllocCount, &l.SmallAllocCount, &l.NumSizeClasses}
}

// Parse reads an encoded Layout.
func Parse(s string) (Layout, error) {
	var l Layout
	parts := strings.Split(s, ".")
	if len(parts) != fields {
		return l, errMalformed
	}
	for i, p := range l.values() {
		v, err := strconv.ParseUint(parts[i], 16, 64)
		if err != nil || len(parts[i]) != 16 {
			return l, errMalformed
		}
		*p = uintptr(v)
	}
	return l, nil
}

// Errors Mallocs reports, made before any crash.
var (
	ErrNoLayout       = errors.New("not counted: the image was not linked with its runtime's layout (qemu/gobuild does that)")
	ErrArch           = errors.New("not counted: the allocation count is read on amd64 and arm only")
	ErrLayoutMismatch = errors.New("not counted: the runtime's layout did not check out against runtime.ReadMemStats at start-up")
	errMalformed      = errors.New("goruntime: malformed layout")
)

var (
	active Layout
	status = ErrNoLayout
)

func init() {
	if !Supported(runtime.GOARCH) {
		status = ErrArch
		return
	}
	l, err := Parse(layout)
	if err != nil || l.Allp == 0 {
		return
	}
	status = Use(l)
}

// Supported reports whether the count is read for programs of goarch:
// the runtime's counters are the same structures on every architecture,
// but only these two are built and checked here (on 32-bit arm, words and
// the mcache's tinyAllocs are 4 bytes, the heap's counters still 8).
func Supported(goarch string) bool { return goarch == "amd64" || goarch == "arm" }

// Use makes Mallocs read l, once l has checked out: what it reads must
// equal the runtime's own MemStats.Mallocs right after ReadMemStats
// (which flushes every mcache) while nothing else allocates. qemu/gobuild
// leaves the layout in the image, which uses it from init; tests use a
// Layout read from their own executable.
func Use(l Layout) error {
	var ms runtime.MemStats
	for range 5 {
		runtime.ReadMemStats(&ms)
		if l.read() == ms.Mallocs {
			active, status = l, nil
			return nil
		}
	}
	active, status = Layout{}, ErrLayoutMismatch
	return status
}

// Mallocs is the number of heap allocations since the program started,
// exact at the moment of the call. It takes no lock and does not
// allocate, so it can be called after a crash with other threads frozen
// anywhere; err says why there is no count.
func Mallocs() (n uint64, err error) {
	if status != nil {
		return 0, status
	}
	return active.read(), nil
}

func (l *Layout) read() uint64 {
	var n uint64
	for g := uintptr(0); g < l.NumGens; g++ {
		d := l.HeapStats + g*l.DeltaSize
		n += u64(d+l.TinyAllocCount) + u64(d+l.LargeAllocCount)
		for sc := uintptr(0); sc < l.NumSizeClasses; sc++ {
			n += u64(d + l.SmallAllocCount + 8*sc)
		}
	}
	allp, np := word(l.Allp), word(l.Allp+ptrSize)
	for i := uintptr(0); i < np; i++ {
		p := word(allp + i*ptrSize)
		if p == 0 {
			continue
		}
		c := word(p + l.PMcache)
		if c == 0 {
			continue
		}
		n += uint64(word(c + l.McacheTinyAllocs))
		for spc := uintptr(0); spc < l.NumSpanClasses; spc++ {
			s := word(c + l.McacheAlloc + spc*ptrSize)
			n += uint64(u16(s+l.SpanAllocCount)) - uint64(u16(s+l.SpanAllocCountBeforeCache))
		}
	}
	return n
}

const ptrSize = unsafe.Sizeof(uintptr(0))

// The runtime's memory, by address; the indirection keeps vet's unsafeptr
// check meaningful for the rest of the code.
func at(a uintptr) unsafe.Pointer { return *(*unsafe.Pointer)(unsafe.Pointer(&a)) }

func word(a uintptr) uintptr { return *(*uintptr)(at(a)) }
func u64(a uintptr) uint64   { return *(*uint64)(at(a)) }
func u16(a uintptr) uint16   { return *(*uint16)(at(a)) }
