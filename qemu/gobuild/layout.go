package gobuild

import (
	"debug/dwarf"
	"debug/elf"
	"fmt"

	"github.com/tamadump/tamadump/board/goruntime"
)

// ReadLayout reads, from the DWARF and symbol table of the Go ELF at path,
// where its runtime keeps the allocation counters board/goruntime reads.
func ReadLayout(path string) (goruntime.Layout, error) {
	var l goruntime.Layout
	f, err := elf.Open(path)
	if err != nil {
		return l, err
	}
	defer f.Close()
	d, err := f.DWARF()
	if err != nil {
		return l, fmt.Errorf("%s: %w (built with -ldflags=-w?)", path, err)
	}
	structs, err := findStructs(d, "runtime.p", "runtime.mcache", "runtime.mspan", "runtime.mstats", "runtime.consistentHeapStats", "runtime.heapStatsDelta")
	if err != nil {
		return l, fmt.Errorf("%s: %w", path, err)
	}
	syms, err := f.Symbols()
	if err != nil {
		return l, fmt.Errorf("%s: %w", path, err)
	}
	addr := map[string]uint64{}
	for _, s := range syms {
		if s.Name == "runtime.allp" || s.Name == "runtime.memstats" {
			addr[s.Name] = s.Value
		}
	}
	r := reader{structs: structs}
	l.Allp = uintptr(addr["runtime.allp"])
	l.PMcache = r.offset("runtime.p", "mcache")
	l.McacheAlloc = r.offset("runtime.mcache", "alloc")
	l.NumSpanClasses = r.count("runtime.mcache", "alloc")
	l.McacheTinyAllocs = r.offset("runtime.mcache", "tinyAllocs")
	l.SpanAllocCount = r.offset("runtime.mspan", "allocCount")
	l.SpanAllocCountBeforeCache = r.offset("runtime.mspan", "allocCountBeforeCache")
	l.HeapStats = uintptr(addr["runtime.memstats"]) + r.offset("runtime.mstats", "heapStats") + r.offset("runtime.consistentHeapStats", "stats")
	l.NumGens = r.count("runtime.consistentHeapStats", "stats")
	l.DeltaSize = uintptr(structs["runtime.heapStatsDelta"].ByteSize)
	l.TinyAllocCount = r.offset("runtime.heapStatsDelta", "tinyAllocCount")
	l.LargeAllocCount = r.offset("runtime.heapStatsDelta", "largeAllocCount")
	l.SmallAllocCount = r.offset("runtime.heapStatsDelta", "smallAllocCount")
	l.NumSizeClasses = r.count("runtime.heapStatsDelta", "smallAllocCount")
	r.size("runtime.mspan", "allocCount", 2)
	r.size("runtime.mspan", "allocCountBeforeCache", 2)
	word := int64(8)
	if f.Class == elf.ELFCLASS32 {
		word = 4
	}
	r.size("runtime.mcache", "tinyAllocs", word) // a uintptr
	r.size("runtime.heapStatsDelta", "tinyAllocCount", 8)
	r.size("runtime.heapStatsDelta", "largeAllocCount", 8)
	switch {
	case r.err != nil:
		return l, fmt.Errorf("%s: %w", path, r.err)
	case l.Allp == 0 || addr["runtime.memstats"] == 0:
		return l, fmt.Errorf("%s: no runtime.allp or runtime.memstats in the symbol table", path)
	}
	return l, nil
}

// findStructs finds the named struct types.
func findStructs(d *dwarf.Data, names ...string) (map[string]*dwarf.StructType, error) {
	want := map[string]bool{}
	for _, n := range names {
		want[n] = true
	}
	found := map[string]*dwarf.StructType{}
	r := d.Reader()
	for len(found) < len(want) {
		e, err := r.Next()
		if err != nil {
			return nil, err
		}
		if e == nil {
			break
		}
		if e.Tag != dwarf.TagStructType {
			continue
		}
		name, _ := e.Val(dwarf.AttrName).(string)
		if !want[name] || found[name] != nil {
			continue
		}
		t, err := d.Type(e.Offset)
		if err != nil {
			return nil, err
		}
		if st, ok := t.(*dwarf.StructType); ok {
			found[name] = st
		}
	}
	for _, n := range names {
		if found[n] == nil {
			return nil, fmt.Errorf("no DWARF type %s", n)
		}
	}
	return found, nil
}

// reader looks fields up, keeping the first error.
type reader struct {
	structs map[string]*dwarf.StructType
	err     error
}

func (r *reader) field(s, f string) *dwarf.StructField {
	for _, fl := range r.structs[s].Field {
		if fl.Name == f {
			return fl
		}
	}
	if r.err == nil {
		r.err = fmt.Errorf("no field %s.%s", s, f)
	}
	return nil
}

func (r *reader) offset(s, f string) uintptr {
	if fl := r.field(s, f); fl != nil {
		return uintptr(fl.ByteOffset)
	}
	return 0
}

// count is the length of an array field.
func (r *reader) count(s, f string) uintptr {
	fl := r.field(s, f)
	if fl == nil {
		return 0
	}
	a, ok := fl.Type.(*dwarf.ArrayType)
	if !ok || a.Count < 0 {
		if r.err == nil {
			r.err = fmt.Errorf("%s.%s is not an array", s, f)
		}
		return 0
	}
	return uintptr(a.Count)
}

// size checks a field's size.
func (r *reader) size(s, f string, n int64) {
	if fl := r.field(s, f); fl != nil && fl.Type.Size() != n && r.err == nil {
		r.err = fmt.Errorf("%s.%s is %d bytes, not %d", s, f, fl.Type.Size(), n)
	}
}
