package imgbench

import (
	"os"
	"strconv"
	"strings"
	"testing"

	"github.com/tamadump/tamadump/qemu/boot"
)

func scaleSizes(b *testing.B) []int {
	s := os.Getenv("SCALE_MIB")
	if s == "" {
		s = "64 256 1024"
	}
	var out []int
	for _, f := range strings.Fields(s) {
		n, err := strconv.Atoi(f)
		if err != nil {
			b.Fatalf("SCALE_MIB: %q", f)
		}
		out = append(out, n)
	}
	return out
}

// TestFillRAM: fill=free puts its random data in the dump: the guest
// sends that much more than the same guest without it (the negative
// control), so the scale benchmarks measure data, not elision.
// Hold the QEMU lock.
func TestFillRAM(t *testing.T) {
	if testing.Short() {
		t.Skip("SKIP: -short")
	}
	const ram = 64
	filled := dump(t, start(t, image(t, boot.StockGo, map[string]string{"fill": "free"}), "virtio-mmio", ram))
	plain := dump(t, start(t, image(t, boot.StockGo, nil), "virtio-mmio", ram))
	t.Logf("fill=free: %d bytes sent, %d zero, %v (%.2f ms/MiB); without: %d sent, %d zero",
		filled.bytes, filled.zero, filled.elapsed, float64(filled.elapsed.Milliseconds())/ram, plain.bytes, plain.zero)
	if filled.bytes < plain.bytes+10<<20 { // of the 16 MiB filled, some pages were data anyway
		t.Errorf("without fill the guest sent %d bytes, with fill=free %d: the fill is not in the dump", plain.bytes, filled.bytes)
	}
}
