package imgbench

import (
	"maps"
	"net/netip"
	"testing"

	"github.com/tamadump/tamadump/qemu/boot"
	"github.com/tamadump/tamadump/qemu/tapnet"
)

// blastMiB is the size of each blast: long enough that the prompt's and
// ARP's time do not count.
const blastMiB = 32

var benchNICs = []string{"virtio-mmio", "e1000"}

// imagePrefix is the tap network of BenchmarkImage/tap: netdumpd on .1.
var imagePrefix = netip.MustParsePrefix("127.0.31.0/24")

// BenchmarkImage, per network, board and NIC: the blast's MB/s
// (raw-MB/s), then a dump of the same 64 MiB guest, its RAM filled with
// random data, and its goodput of non-zero data over the transfer
// (goodput-MB/s: from the first VMCORE to the KDH's ACK, as the blast is
// timed without its ARP) and over the guest's whole dump time
// (dump-MB/s), with that time per phase (ms) and the ACK datagrams it
// received; then the same dump with one ACK per message (acks=single, as
// from FreeBSD's netdumpd), for comparison. The networks: usernet, the
// user-space network with netdumpd's core in this process; tap, a tap
// device in a namespace of its own with the netdumpd binary on the
// kernel's network (root only: it skips otherwise). Hold the QEMU lock.
func BenchmarkImage(b *testing.B) {
	b.Run("usernet", func(b *testing.B) {
		benchImage(b, nil, func(b *testing.B, img *boot.Image, nic string) guest { return start(b, img, nic, 64) })
	})
	b.Run("tap", func(b *testing.B) {
		n, bin := tapnet.ForTest(b, "image0", imagePrefix)
		addrs := map[string]string{"server": n.Host.String(), "client": n.Guest.String()}
		benchImage(b, addrs, func(b *testing.B, img *boot.Image, nic string) guest { return startTap(b, n, bin, img, nic, 64) })
	})
}

// benchImage is BenchmarkImage on one network: its settings for the
// images, and how a guest boots on it.
func benchImage(b *testing.B, settings map[string]string, boot1 func(*testing.B, *boot.Image, string) guest) {
	filled := map[string]string{"fill": "free"}
	maps.Copy(filled, settings)
	single := maps.Clone(filled)
	single["acks"] = "single"
	for _, board := range []string{boot.StockGo, boot.TamaGo} {
		for _, nic := range benchNICs {
			b.Run(board+"/"+nic, func(b *testing.B) {
				img := image(b, board, filled)
				singleImg := image(b, board, single)
				var raw, good, whole, ms, acks, singleGood, singleAcks float64
				var ph [6]float64
				for range b.N {
					g := boot1(b, img, nic)
					r := g.blast(b, blastMiB)
					d := g.dump(b)
					g.Close()
					g = boot1(b, singleImg, nic)
					sd := g.dump(b)
					g.Close()
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
