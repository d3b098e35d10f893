package imgbench

import (
	"net/netip"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/tamadump/tamadump/qemu/boot"
	"github.com/tamadump/tamadump/qemu/tapnet"
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

// scalePrefix is the tap network of the scale benchmark: netdumpd on .1.
var scalePrefix = netip.MustParsePrefix("127.0.29.0/24")

// BenchmarkScale dumps the stock-Go guest, its RAM filled with random
// data, at each size through a tap device to the netdumpd binary on the
// kernel network: the time per MiB of RAM (it should stay flat), and
// netdumpd's peak resident set (VmHWM, from a fresh process per dump: it
// must not grow with the dump) and CPU per MiB. Then the same guest
// without the fill, its RAM mostly zero (zero-ms/MiB: the fill's time over
// it is how much faster a mostly-zero machine dumps). SCALE_MIB lists the
// sizes (default 64 256 1024). Needs root; hold the QEMU lock.
func BenchmarkScale(b *testing.B) {
	n, bin := tapnet.ForTest(b, "scale0", scalePrefix)
	tap := map[string]string{"server": n.Host.String(), "client": n.Guest.String()}
	plain := image(b, boot.StockGo, tap)
	tap["fill"] = "free"
	filled := image(b, boot.StockGo, tap)
	msPerMiB := func(d dumpResult, mib int) float64 { return float64(d.elapsed/time.Microsecond) / 1e3 / float64(mib) }
	for _, mib := range scaleSizes(b) {
		b.Run(strconv.Itoa(mib)+"MiB", func(b *testing.B) {
			var perMiB, zero, good, cpu, hwm, idle float64
			for range b.N {
				d, s := scaleDump(b, n, bin, filled, mib)
				perMiB += msPerMiB(d, mib)
				good += d.goodput()
				cpu += float64(s.cpu/time.Microsecond) / 1e3 / float64(mib)
				hwm = max(hwm, float64(s.peak)/(1<<20))
				idle = max(idle, float64(s.idle)/(1<<20))
				z, _ := scaleDump(b, n, bin, plain, mib)
				zero += msPerMiB(z, mib)
			}
			k := float64(b.N)
			b.ReportMetric(perMiB/k, "ms/MiB")
			b.ReportMetric(zero/k, "zero-ms/MiB")
			b.ReportMetric(good/k, "goodput-MB/s")
			b.ReportMetric(cpu/k, "server-cpu-ms/MiB")
			b.ReportMetric(hwm, "server-VmHWM-MiB")
			b.ReportMetric(idle, "server-idle-VmHWM-MiB")
		})
	}
}

// serverUse is what netdumpd used: its peak resident set before the dump
// and after it, and its CPU time over the dump.
type serverUse struct {
	idle, peak uint64
	cpu        time.Duration
}

// scaleDump boots img with mib MiB on the tap network, panics it and
// waits for a fresh netdumpd to complete its dump.
func scaleDump(b *testing.B, n *tapnet.Net, bin string, img *boot.Image, mib int) (dumpResult, serverUse) {
	b.Helper()
	c, err := n.Crash(bin, b.TempDir(), img, mib, "virtio-mmio")
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	use := serverUse{idle: c.IdleRSS, cpu: c.CPU}
	if use.peak, err = c.Server.PeakRSS(); err != nil {
		b.Fatal(err)
	}
	return parseDump(b, c.Guest.Output()), use
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
	m := start(t, image(t, boot.StockGo, map[string]string{"fill": "free"}), "virtio-mmio", ram)
	filled := m.dump(t)
	m.Close()
	plain := start(t, image(t, boot.StockGo, nil), "virtio-mmio", ram).dump(t)
	t.Logf("fill=free: %d bytes sent, %d zero, %v (%.2f ms/MiB); without: %d sent, %d zero",
		filled.bytes, filled.zero, filled.elapsed, float64(filled.elapsed.Milliseconds())/ram, plain.bytes, plain.zero)
	if filled.bytes < plain.bytes+10<<20 { // of the 16 MiB filled, some pages were data anyway
		t.Errorf("without fill the guest sent %d bytes, with fill=free %d: the fill is not in the dump", plain.bytes, filled.bytes)
	}
}
