package client

import (
	"bytes"
	"testing"

	"github.com/tamadump/tamadump/netdump/wire"
)

// TestAllZero: a zero buffer of any length and alignment is zero, and one
// non-zero bit anywhere in it (the negative control, at every byte and
// every bit of a byte) makes it not.
func TestAllZero(t *testing.T) {
	buf := make([]byte, 300)
	for start := range 9 {
		for n := range len(buf) - start {
			b := buf[start : start+n]
			if !allZero(b) {
				t.Fatalf("zero [%d:%d] taken for data", start, start+n)
			}
			for i := range b {
				for bit := range 8 {
					b[i] = 1 << bit
					if allZero(b) {
						t.Fatalf("[%d:%d] with bit %d of byte %d set taken for zero", start, start+n, bit, i)
					}
					b[i] = 0
				}
			}
		}
	}
}

// BenchmarkAllZero against the memequal it replaced, on a zero page.
func BenchmarkAllZero(b *testing.B) {
	page := make([]byte, wire.DataSize)
	b.Run("allZero", func(b *testing.B) {
		b.SetBytes(int64(len(page)))
		for b.Loop() {
			if !allZero(page) {
				b.Fatal("zero page taken for data")
			}
		}
	})
	b.Run("memequal", func(b *testing.B) {
		b.SetBytes(int64(len(page)))
		for b.Loop() {
			if !bytes.Equal(page, zeroPage[:]) {
				b.Fatal("zero page taken for data")
			}
		}
	})
}
