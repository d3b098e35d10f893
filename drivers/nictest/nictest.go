// Package nictest holds what the NIC drivers' tests share: test frames,
// the allocation check for the panic-time paths, and the transmit
// benchmark against a QEMU device.
package nictest

import (
	"encoding/binary"
	"runtime"
	"testing"
	"time"

	"github.com/tamadump/tamadump/debugnet"
	"github.com/tamadump/tamadump/qemu"
)

// Pattern is n pseudo-random bytes derived from seed, so frames of
// different seeds differ everywhere.
func Pattern(n int, seed byte) []byte {
	b := make([]byte, n)
	x := uint32(seed)*2654435761 + 1
	for i := range b {
		x = x*1664525 + 1013904223
		b[i] = byte(x >> 24)
	}
	return b
}

// Frame is an Ethernet frame of n bytes from src to dst with a Pattern
// payload.
func Frame(n int, dst, src [6]byte, seed byte) []byte {
	f := Pattern(n, seed)
	copy(f[0:], dst[:])
	copy(f[6:], src[:])
	binary.BigEndian.PutUint16(f[12:], 0x88b5) // local experimental EtherType
	return f
}

// NoAllocs fails t if f allocates, judged both by testing.AllocsPerRun
// and by runtime.MemStats over 1000 calls. MemStats counts the whole
// process, so it takes the best of a few rounds: a stray runtime
// allocation elsewhere must not count against the driver.
func NoAllocs(t *testing.T, name string, f func()) {
	t.Helper()
	if a := testing.AllocsPerRun(100, f); a != 0 {
		t.Errorf("%s: %v allocations per call", name, a)
	}
	best := ^uint64(0)
	for round := 0; round < 3 && best != 0; round++ {
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		for range 1000 {
			f()
		}
		runtime.ReadMemStats(&after)
		best = min(best, after.Mallocs-before.Mallocs)
	}
	if best != 0 {
		t.Errorf("%s: %d mallocs in 1000 calls", name, best)
	}
}

// BenchTransmit sends frame b.N times through nic and checks that the
// host side of link received every one; it reports frames/s and, through
// SetBytes, MB/s.
func BenchTransmit(b *testing.B, nic debugnet.NIC, link *qemu.Link, frame []byte) {
	got := make(chan int)
	stop := make(chan struct{})
	go func() {
		buf := make([]byte, qemu.MaxFrame)
		n := 0
		for {
			if _, err := link.RecvInto(buf, 100*time.Millisecond); err == nil {
				n++
				continue
			}
			select {
			case <-stop:
				got <- n
				return
			default:
			}
		}
	}()
	b.SetBytes(int64(len(frame)))
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if err := nic.Transmit(frame); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "frames/s")
	close(stop)
	if n := <-got; n != b.N {
		b.Fatalf("host received %d of %d frames", n, b.N)
	}
}
