package linkbench

import (
	"net/netip"
	"os"
	"os/exec"
	"regexp"
	"slices"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/tamadump/tamadump/debugnet/linktest"
	"github.com/tamadump/tamadump/qemu/boot"
	"github.com/tamadump/tamadump/qemu/tapnet"
)

// ramMiB keeps the guests small: the dump is its memory.
const ramMiB = 64

var (
	imgOnce sync.Once
	img     *boot.Image
	imgErr  error
	imgDir  string
)

// image builds the stock-Go image once, with the user-space network's
// addresses as its defaults.
func image(b *testing.B) *boot.Image {
	b.Helper()
	if _, err := exec.LookPath("qemu-system-x86_64"); err != nil {
		b.Skip("qemu-system-x86_64 not installed")
	}
	imgOnce.Do(func() {
		imgDir, imgErr = os.MkdirTemp("", "tamadump-linkbench-")
		if imgErr == nil {
			img, imgErr = boot.Build(boot.StockGo, imgDir, boot.Settings())
		}
	})
	if imgErr != nil {
		b.Fatal(imgErr)
	}
	return img
}

func TestMain(m *testing.M) {
	code := m.Run()
	if imgDir != "" {
		os.RemoveAll(imgDir)
	}
	os.Exit(code)
}

// result is one dump as the host saw it.
type result struct {
	elapsed  time.Duration // "panic" typed → netdumpd's "Completed dump"
	sent     int64         // payload bytes the guest sent (zero pages elided)
	hostCPU  time.Duration // the host side's CPU time meanwhile
	datagram int64         // datagrams the guest sent, retransmissions included
	// From the guest's closing line: retransmissions, and of them those
	// prompted by later ACKs, by tail-loss probes and by timeouts, and
	// those whose earlier copy was acknowledged too; the transfer's end
	// after the last message went out.
	retx, early, probes, timeouts, spurious int64
	tail                                    time.Duration
}

// stats reads the guest's closing line.
var stats = regexp.MustCompile(`dumped (\d+) bytes \((\d+) zero, not sent\) in \d+ ms, (\d+) retransmissions ` +
	`\(\d+ refused by the NIC, (\d+) early, (\d+) probes, (\d+) on timeout, (\d+) spurious\); \d+ ACK datagrams, \d+ ACKs from repeats; window \d+ \(peak \d+\), RTT \d+ us \(smoothed \d+ us\); transfer \d+ us, its tail (\d+) us`)

func (r *result) parse(b *testing.B, console string) {
	m := stats.FindStringSubmatch(console)
	if m == nil {
		b.Fatalf("no closing statistics on the console:\n%s", tail(console))
	}
	var n [8]int64
	for i := range n {
		n[i], _ = strconv.ParseInt(m[i+1], 10, 64)
	}
	r.sent = n[0] - n[1]
	r.retx, r.early, r.probes, r.timeouts, r.spurious = n[2], n[3], n[4], n[5], n[6]
	r.tail = time.Duration(n[7]) * time.Microsecond
	r.datagram = (r.sent+1447)/1448 + r.retx
}

func tail(s string) string {
	if len(s) > 2000 {
		return s[len(s)-2000:]
	}
	return s
}

// selfCPU is this process's CPU time (the user-space network and netdumpd
// run in it).
func selfCPU() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru) //nolint:errcheck // cannot fail
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// overUsernet dumps the guest through the user-space network, with faults.
func overUsernet(b *testing.B, f linktest.Faults) result {
	dir := b.TempDir()
	m, err := boot.Start(boot.Config{QEMUArgs: image(b).QEMUArgs(ramMiB), DumpDir: dir, Faults: f})
	if err != nil {
		b.Fatal(err)
	}
	defer m.Close()
	if _, err := m.Expect(`READY`, 60*time.Second); err != nil {
		b.Fatal(err)
	}
	var r result
	cpu := selfCPU()
	start := time.Now()
	if err := m.Send("panic boom"); err != nil {
		b.Fatal(err)
	}
	if err := m.WaitLog("Completed dump", 600*time.Second); err != nil {
		b.Fatalf("%v\nconsole:\n%s", err, tail(m.Console()))
	}
	r.elapsed = time.Since(start)
	r.hostCPU = selfCPU() - cpu
	if _, err := m.Expect(stats.String(), 30*time.Second); err != nil {
		b.Fatal(err)
	}
	r.parse(b, m.Console())
	if testing.Verbose() {
		b.Logf("%s", stats.FindString(m.Console()))
	}
	return r
}

// report gives the median of each figure over the runs: a lost HERALD or
// a host that stalls the guest makes one dump of several slow, and the
// median is what a dump usually takes.
func report(b *testing.B, rs []result) {
	median := func(f func(r result) float64) float64 {
		v := make([]float64, len(rs))
		for i, r := range rs {
			v[i] = f(r)
		}
		return median(v)
	}
	b.ReportMetric(median(result.goodput), "MB/s")
	b.ReportMetric(median(func(r result) float64 { return r.elapsed.Seconds() * 1e3 }), "dump-ms")
	b.ReportMetric(median(func(r result) float64 { return r.tail.Seconds() * 1e3 }), "tail-ms")
	b.ReportMetric(median(func(r result) float64 { return float64(r.retx) }), "retransmits/op")
	b.ReportMetric(median(func(r result) float64 { return float64(r.early) }), "early/op")
	b.ReportMetric(median(func(r result) float64 { return float64(r.probes) }), "probes/op")
	b.ReportMetric(median(func(r result) float64 { return float64(r.timeouts) }), "timeouts/op")
	b.ReportMetric(median(func(r result) float64 { return float64(r.spurious) }), "spurious/op")
	b.ReportMetric(median(func(r result) float64 { return r.hostCPU.Seconds() / float64(r.datagram) * 1e6 }), "host-CPU-µs/datagram")
}

func median(v []float64) float64 {
	slices.Sort(v)
	if n := len(v); n%2 == 0 {
		return (v[n/2-1] + v[n/2]) / 2
	}
	return v[len(v)/2]
}

// goodput is the dump's payload over its time, in MB/s.
func (r result) goodput() float64 { return float64(r.sent) / r.elapsed.Seconds() / 1e6 }

// lossy is the fault matrix (as the in-process one of netdump/client).
var lossy = []struct {
	name string
	f    linktest.Faults
}{
	{"loss-1%", linktest.Faults{Loss: 0.01}},
	{"loss-5%", linktest.Faults{Loss: 0.05}},
	{"loss-20%", linktest.Faults{Loss: 0.20}},
	{"loss-1%-dup-reorder", linktest.Faults{Loss: 0.01, Dup: 0.05, Reorder: 0.10}},
	{"loss-5%-dup-reorder", linktest.Faults{Loss: 0.05, Dup: 0.05, Reorder: 0.10}},
	{"loss-20%-dup-reorder", linktest.Faults{Loss: 0.20, Dup: 0.05, Reorder: 0.10}},
}

// BenchmarkE2EUsernet dumps a 64 MiB stock-Go guest through the
// user-space network: clean (the path behind make qemu), and through the
// lossy relay with the fault matrix. Each lossy dump comes right after a
// clean one, and vs-clean is the median of the pairs' goodput ratios: a
// host busy with other work for a while slows both dumps of a pair, where
// it may slow all of one case and none of another. Hold the QEMU lock.
func BenchmarkE2EUsernet(b *testing.B) {
	cases := append([]struct {
		name string
		f    linktest.Faults
	}{{"clean", linktest.Faults{}}}, lossy...)
	for i, tc := range cases {
		b.Run(tc.name, func(b *testing.B) {
			image(b)
			var rs []result
			var ratios []float64
			for range b.N {
				f := tc.f
				f.Seed = uint64(i*100 + len(rs) + 1)
				var clean result
				if i > 0 {
					clean = overUsernet(b, linktest.Faults{})
				}
				r := overUsernet(b, f)
				if i > 0 {
					ratios = append(ratios, r.goodput()/clean.goodput())
				}
				rs = append(rs, r)
			}
			report(b, rs)
			if len(ratios) > 0 {
				b.ReportMetric(median(ratios), "vs-clean")
			}
		})
	}
}

// tapPrefix is the tap benchmark's network: netdumpd on .1, the guest on
// .2, in the namespace lossy0.
var tapPrefix = netip.MustParsePrefix("127.0.22.0/24")

// overTap dumps the guest through a tap device to a fresh netdumpd on the
// namespace's kernel network.
func overTap(b *testing.B, n *tapnet.Net, bin string) result {
	guest, err := image(b).With(map[string]string{"server": n.Host.String(), "client": n.Guest.String()})
	if err != nil {
		b.Fatal(err)
	}
	c, err := n.Crash(bin, b.TempDir(), guest, ramMiB, "virtio-mmio")
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	r := result{elapsed: c.Elapsed, hostCPU: c.CPU}
	r.parse(b, c.Guest.Output())
	return r
}

// BenchmarkE2ETap dumps the same guest through a tap device to netdumpd
// on a kernel network (a namespace the benchmark makes and removes): the
// reference the user-space network is compared with. Each tap dump
// follows a clean one through the user-space network, and
// usernet-vs-tap is the median of the pairs' dump-time ratios, so a
// host busy for a while slows both sides of a pair.
func BenchmarkE2ETap(b *testing.B) {
	image(b)
	n, bin := tapnet.ForTest(b, "lossy0", tapPrefix)
	var rs []result
	var ratios []float64
	for range b.N {
		u := overUsernet(b, linktest.Faults{})
		r := overTap(b, n, bin)
		ratios = append(ratios, u.elapsed.Seconds()/r.elapsed.Seconds())
		rs = append(rs, r)
	}
	report(b, rs)
	b.ReportMetric(median(ratios), "usernet-vs-tap")
}
