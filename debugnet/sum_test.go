package debugnet

import (
	"testing"

	"gvisor.dev/gvisor/pkg/tcpip/checksum"
)

// TestOnesSum: onesSum equals checksum.Checksum at each of 8 alignments,
// at every length up to 64 bytes and at lengths a sixty-fourth apart
// beyond, up to a jumbo frame, for patterned, all-ones and zero data; and
// copySum returns the same sum, copies exactly src and writes nothing of
// dst beyond it.
func TestOnesSum(t *testing.T) {
	const n = 9018
	for _, fill := range []func(i int) byte{
		func(i int) byte { return byte(i*31 + 7) },
		func(int) byte { return 0xff },
		func(int) byte { return 0 },
	} {
		b := make([]byte, n+8)
		for i := range b {
			b[i] = fill(i)
		}
		dst := make([]byte, n+9)
		for _, init := range []uint16{0, 1, 0x1234, 0xfffe, 0xffff} {
			for off := range 8 {
				for l := 0; off+l <= n; l += 1 + l/64 {
					if got, want := onesSum(b[off:off+l], init), checksum.Checksum(b[off:off+l], init); got != want {
						t.Fatalf("offset %d, length %d, initial %#x: %#x, want %#x", off, l, init, got, want)
					}
					for i := range dst {
						dst[i] = 0xa5
					}
					src := b[off : off+l]
					if got, want := copySum(dst[1:], src, init), checksum.Checksum(src, init); got != want {
						t.Fatalf("copySum, offset %d, length %d, initial %#x: %#x, want %#x", off, l, init, got, want)
					}
					if string(dst[1:1+l]) != string(src) || dst[0] != 0xa5 || dst[1+l] != 0xa5 {
						t.Fatalf("copySum, offset %d, length %d: the copy is wrong or overran", off, l)
					}
				}
			}
		}
	}
}

var sumSink uint16

// BenchmarkOnesSum against checksum.Checksum over a 1448-byte payload and
// its UDP header: the pair is what to compare under qemu-user or in a
// guest.
func BenchmarkOnesSum(b *testing.B) {
	p := make([]byte, 1456)
	for name, f := range map[string]func([]byte, uint16) uint16{"onesSum": onesSum, "checksum.Checksum": checksum.Checksum} {
		b.Run(name, func(b *testing.B) {
			b.SetBytes(int64(len(p)))
			for b.Loop() {
				sumSink = f(p, 0)
			}
		})
	}
}
