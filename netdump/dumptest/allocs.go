package dumptest

import (
	"reflect"
	"runtime"
)

// HeapAllocs runs f and returns how many heap allocations were made with
// f on the stack: by f's own code, or by the runtime on its behalf (a
// slice grown, a timer added). It records every allocation while it runs
// (MemProfileRate 1) and counts the profile's records that pass through
// f, so the runtime's own background work on a loaded host (an M started
// when the world restarts, the scavenger's timers), which MemStats.Mallocs
// counts too, does not show; nor do other goroutines'.
func HeapAllocs(f func()) uint64 {
	name := runtime.FuncForPC(reflect.ValueOf(f).Pointer()).Name()
	defer func(rate int) { runtime.MemProfileRate = rate }(runtime.MemProfileRate)
	runtime.MemProfileRate = 1
	before := allocsThrough(name)
	f()
	return allocsThrough(name) - before
}

// allocsThrough counts the allocations in the memory profile whose stacks
// hold the function name. A profile is complete up to two collections
// back, so it collects twice first.
func allocsThrough(name string) uint64 {
	runtime.GC()
	runtime.GC()
	var recs []runtime.MemProfileRecord
	for {
		n, ok := runtime.MemProfile(recs, true)
		if ok {
			recs = recs[:n]
			break
		}
		recs = make([]runtime.MemProfileRecord, n+64)
	}
	var total uint64
	for i := range recs {
		frames := runtime.CallersFrames(recs[i].Stack())
		for {
			fr, more := frames.Next()
			if fr.Function == name {
				total += uint64(recs[i].AllocObjects)
				break
			}
			if !more {
				break
			}
		}
	}
	return total
}
