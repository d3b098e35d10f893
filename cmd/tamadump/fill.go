package main

import (
	"fmt"
	"io"
	"strconv"
)

// filled keeps the random data alive so that it is in the dump.
var filled [][]byte

// fillReserve is what fill=free leaves: the memory the image holds at
// boot beyond the heap (its text and bss, the DMA region, the board's
// tables: about 40 MiB on the stock-Go board) and room for the runtime,
// for 64 MiB of RAM.
const fillReserve = 48

// fillRAM is the fill setting (tests of a dump's speed at scale): fill=N
// puts N MiB of random data on the heap before the prompt, fill=free the
// RAM less fillReserve MiB (and an eighth of what is beyond 64 MiB). Random data has no zero pages, so all of it is sent.
func fillRAM(out io.Writer, setting string, memMB uint64) {
	var n uint64
	if setting == "free" {
		// Beyond 64 MiB an eighth more is left: the runtime's and the
		// board's tables grow with the memory they describe.
		r := fillReserve + max(memMB, 64)/8 - 8
		n = memMB - min(memMB, r)
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
