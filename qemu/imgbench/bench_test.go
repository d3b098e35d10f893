package imgbench

import (
	"testing"

	"github.com/tamadump/tamadump/qemu/boot"
)

// blastMiB is the size of each blast: long enough that the prompt's and
// ARP's time do not count.
const blastMiB = 32

var benchNICs = []string{"virtio-mmio", "e1000"}

// BenchmarkImage, per board and NIC: the blast's MB/s (raw-MB/s), then a
// dump of the same 64 MiB guest, its RAM filled with random data, and its
// goodput of non-zero data over the transfer (goodput-MB/s: from the first
// VMCORE to the KDH's ACK, as the blast is timed without its ARP) and over
// the guest's whole dump time (dump-MB/s), with that time per phase (ms)
// and the ACK datagrams it received; then the same dump with one ACK per
// message (acks=single, as from FreeBSD's netdumpd), for comparison.
// Hold the QEMU lock.
func BenchmarkImage(b *testing.B) {
	for _, board := range []string{boot.StockGo, boot.TamaGo} {
		for _, nic := range benchNICs {
			b.Run(board+"/"+nic, func(b *testing.B) {
				img := image(b, board, map[string]string{"fill": "free"})
				single := image(b, board, map[string]string{"fill": "free", "acks": "single"})
				var raw, good, whole, ms, acks, singleGood, singleAcks float64
				var ph [6]float64
				for range b.N {
					m := start(b, img, nic, 64)
					r := blast(b, m, blastMiB)
					d := dump(b, m)
					m.Close()
					m = start(b, single, nic, 64)
					sd := dump(b, m)
					m.Close()
					singleGood += sd.transferGoodput()
					singleAcks += float64(sd.acks)
					raw += r.mbps()
					good += d.transferGoodput()
					whole += d.goodput()
					ms += d.elapsed.Seconds() * 1e3
					acks += float64(d.acks)
					for i, v := range d.phases {
						ph[i] += float64(v) / 1e3
					}
				}
				n := float64(b.N)
				b.ReportMetric(raw/n, "raw-MB/s")
				b.ReportMetric(good/n, "goodput-MB/s")
				b.ReportMetric(whole/n, "dump-MB/s")
				b.ReportMetric(ms/n, "dump-ms")
				b.ReportMetric(acks/n, "ack-datagrams")
				b.ReportMetric(singleGood/n, "single-acks-goodput-MB/s")
				b.ReportMetric(singleAcks/n, "single-acks-ack-datagrams")
				for i, v := range ph {
					b.ReportMetric(v/n, phaseNames[i]+"-ms")
				}
			})
		}
	}
}
