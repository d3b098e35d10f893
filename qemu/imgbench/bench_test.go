package imgbench

import (
	"strconv"
	"testing"
	"time"

	"github.com/tamadump/tamadump/qemu/boot"
)

// blastMiB is the size of each blast: long enough that the prompt's and
// ARP's time do not count.
const blastMiB = 32

var benchNICs = []string{"virtio-mmio", "e1000"}

// BenchmarkImage, per board and NIC: the blast's MB/s (raw-MB/s), then a
// dump of the same 64 MiB guest, its RAM filled with random data, and its
// goodput of non-zero data (goodput-MB/s) over the guest's own dump time,
// with that time per phase (ms). Hold the QEMU lock.
func BenchmarkImage(b *testing.B) {
	for _, board := range []string{boot.StockGo, boot.TamaGo} {
		for _, nic := range benchNICs {
			b.Run(board+"/"+nic, func(b *testing.B) {
				img := image(b, board, map[string]string{"fill": "free"})
				var raw, good, ms float64
				var ph [6]float64
				for range b.N {
					m := start(b, img, nic, 64)
					r := blast(b, m, blastMiB)
					d := dump(b, m)
					m.Close()
					raw += r.mbps()
					good += d.goodput()
					ms += d.elapsed.Seconds() * 1e3
					for i, v := range d.phases {
						ph[i] += float64(v) / 1e3
					}
				}
				n := float64(b.N)
				b.ReportMetric(raw/n, "raw-MB/s")
				b.ReportMetric(good/n, "goodput-MB/s")
				b.ReportMetric(ms/n, "dump-ms")
				for i, v := range ph {
					b.ReportMetric(v/n, phaseNames[i]+"-ms")
				}
			})
		}
	}
}

// BenchmarkScale dumps the stock-Go guest with its RAM filled with random
// data at each size: the time per MiB of RAM (it should stay flat), and
// the server's peak memory. The server runs in this process (qemu/boot's
// harness), so its peak is this process's Go heap in use (HeapInuse,
// sampled every 100 ms) above what it held before the dump, and the
// process's VmHWM. SCALE_MIB lists the sizes (default 64 256 1024).
func BenchmarkScale(b *testing.B) {
	for _, mib := range scaleSizes(b) {
		b.Run(strconv.Itoa(mib)+"MiB", func(b *testing.B) {
			img := image(b, boot.StockGo, map[string]string{"fill": "free"})
			var perMiB, heap, hwm, good float64
			for range b.N {
				m := start(b, img, "virtio-mmio", mib)
				d := dump(b, m)
				m.Close()
				perMiB += float64(d.elapsed/time.Microsecond) / 1e3 / float64(mib)
				heap += float64(d.heapPeak-min(d.heapPeak, d.heapBefore)) / (1 << 20)
				hwm = max(hwm, float64(vmHWM())/(1<<20))
				good += d.goodput()
			}
			n := float64(b.N)
			b.ReportMetric(perMiB/n, "ms/MiB")
			b.ReportMetric(good/n, "goodput-MB/s")
			b.ReportMetric(heap/n, "server-heap-growth-MiB")
			b.ReportMetric(hwm, "harness-VmHWM-MiB")
		})
	}
}
