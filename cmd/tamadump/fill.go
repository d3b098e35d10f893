package main

import (
	"fmt"
	"io"
	"runtime"
	"strconv"
)

// filled keeps the random data alive so that it is in the dump.
var filled [][]byte

// fillHeadroom is memory left to the runtime, the network and the dump
// when fill=free fills the rest.
const fillHeadroom = 12 << 20

// fillRAM is the fill setting (tests of a dump's speed at scale): fill=N
// puts N MiB of random data on the heap before the prompt, fill=free as
// much as the RAM has beyond what the runtime already holds and a
// headroom. Random data has no zero pages, so all of it is sent.
func fillRAM(out io.Writer, setting string, memMB uint64) {
	var n uint64
	if setting == "free" {
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		if total := memMB << 20; total > ms.Sys+fillHeadroom {
			n = (total - ms.Sys - fillHeadroom) >> 20
		}
	} else {
		v, err := strconv.ParseUint(setting, 10, 32)
		if err != nil {
			fmt.Fprintf(out, "fill: %q is not a number of MiB or free\r\n", setting)
			return
		}
		n = v
	}
	x := uint64(0x9e3779b97f4a7c15)
	for range n {
		b := make([]byte, 1<<20)
		for i := 0; i < len(b); i += 8 {
			// xorshift64: fast under emulation, and never a zero page.
			x ^= x << 13
			x ^= x >> 7
			x ^= x << 17
			for k := range 8 {
				b[i+k] = byte(x >> (8 * k))
			}
		}
		filled = append(filled, b)
	}
	fmt.Fprintf(out, "fill: %d MiB of random data\r\n", n)
}
