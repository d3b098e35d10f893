package main

import (
	"sync"
	"time"
)

// trigger crashes the image the way a test asks for, after delay.
func trigger(kind, delay string) {
	if d, err := time.ParseDuration(delay); err == nil {
		time.Sleep(d)
	}
	switch kind {
	case "nil":
		var p *[16]uint64
		Marker = p[3] // nil dereference
	case "index":
		s := []int{1, 2, 3}
		i := len(s) + int(Marker>>63) + 2 // 5, opaque to the compiler
		Marker = uint64(s[i])
	case "write":
		var p *[1024]uint32
		p[512] = uint32(Marker) // a store to 0x800: the zero page is unmapped
	case "fault":
		ud2()
	case "fatal":
		var mu sync.Mutex
		mu.Unlock() // fatal error: sync: unlock of unlocked mutex
	case "goroutine":
		done := make(chan struct{})
		go func() { panic("boom in a goroutine") }()
		<-done
	default:
		panic(kind)
	}
}

// ud2 executes an invalid instruction: a CPU exception.
func ud2()
