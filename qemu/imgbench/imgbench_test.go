package imgbench

import (
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"gvisor.dev/gvisor/pkg/tcpip/transport/udp"

	"github.com/tamadump/tamadump/qemu/boot"
	"github.com/tamadump/tamadump/qemu/tapnet"
)

var (
	mu     sync.Mutex
	images = map[string]*boot.Image{}
	dirs   []string
)

// image builds board's image once, with the user-space network's
// addresses as its defaults; the TamaGo board skips without its toolchain.
func image(tb testing.TB, board string, extra map[string]string) *boot.Image {
	tb.Helper()
	if _, err := exec.LookPath("qemu-system-x86_64"); err != nil {
		tb.Skip("SKIP: qemu-system-x86_64 not installed")
	}
	if board == boot.TamaGo {
		if b, why := boot.PickBoard(); b != boot.TamaGo {
			tb.Skipf("SKIP: no TamaGo toolchain: %v", why)
		}
	}
	mu.Lock()
	defer mu.Unlock()
	key := fmt.Sprint(board, extra)
	if img, ok := images[key]; ok {
		return img
	}
	dir, err := os.MkdirTemp("", "tamadump-imgbench-")
	if err != nil {
		tb.Fatal(err)
	}
	dirs = append(dirs, dir)
	set := boot.Settings()
	for k, v := range extra {
		set[k] = v
	}
	img, err := boot.Build(board, dir, set)
	if err != nil {
		tb.Fatal(err)
	}
	images[key] = img
	return img
}

func TestMain(m *testing.M) {
	code := m.Run()
	for _, d := range dirs {
		os.RemoveAll(d)
	}
	os.Exit(code)
}

// guest is a booted guest on one of the networks, at its prompt.
type guest interface {
	// blast sends mib MiB from the guest to a counting sink on the host.
	blast(tb testing.TB, mib int) blastResult
	// dump panics the guest and waits for its dump to complete.
	dump(tb testing.TB) dumpResult
	Close()
}

// machine is a guest on the user-space network, which Close stops once,
// whoever calls it first.
type machine struct {
	*boot.Machine
	once sync.Once
}

func (m *machine) Close() { m.once.Do(m.Machine.Close) }

// start boots img with ramMiB on nic and waits for its prompt.
func start(tb testing.TB, img *boot.Image, nic string, ramMiB int) *machine {
	tb.Helper()
	bm, err := boot.Start(boot.Config{QEMUArgs: img.QEMUArgs(ramMiB), NIC: nic, DumpDir: tb.TempDir()})
	if err != nil {
		tb.Fatal(err)
	}
	m := &machine{Machine: bm}
	tb.Cleanup(m.Close)
	if _, err := m.Expect(`READY`, 300*time.Second); err != nil {
		tb.Fatalf("%v\n%s", err, tail(m.Console()))
	}
	return m
}

func (m *machine) blast(tb testing.TB, mib int) blastResult {
	tb.Helper()
	conn, ep, err := m.Stack().Dial(udp.ProtocolNumber, 9, netip.AddrPort{})
	if err != nil {
		tb.Fatal(err)
	}
	ep.SocketOptions().SetReceiveBufferSize(64<<20, true)
	return runBlast(tb, conn, m.Send, func(re string) (string, error) {
		_, err := m.Expect(re, 600*time.Second)
		return m.Console(), err
	}, "127.0.9.1", mib)
}

func (m *machine) dump(tb testing.TB) dumpResult {
	tb.Helper()
	if err := m.Send("panic boom"); err != nil {
		tb.Fatal(err)
	}
	if err := m.WaitLog("Completed dump", 900*time.Second); err != nil {
		tb.Fatalf("%v\n%s", err, tail(m.Console()))
	}
	if _, err := m.Expect(boot.DumpReported, 60*time.Second); err != nil {
		tb.Fatalf("%v\n%s", err, tail(m.Console()))
	}
	return parseDump(tb, m.Console())
}

// tapGuest is a guest on a tap device with a fresh netdumpd binary of its
// own: the kernel's network path, as a real machine dumps.
type tapGuest struct {
	*tapnet.Crash
	net *tapnet.Net
}

// startTap boots img (made with the tap network's addresses) with ramMiB
// on nic, and netdumpd (bin) beside it, and waits for the guest's prompt.
func startTap(tb testing.TB, n *tapnet.Net, bin string, img *boot.Image, nic string, ramMiB int) *tapGuest {
	tb.Helper()
	c, err := n.Boot(bin, tb.TempDir(), img, ramMiB, nic)
	if err != nil {
		tb.Fatal(err)
	}
	g := &tapGuest{Crash: c, net: n}
	tb.Cleanup(g.Close)
	return g
}

func (g *tapGuest) blast(tb testing.TB, mib int) blastResult {
	tb.Helper()
	conn, err := g.net.ListenUDP(9, 64<<20)
	if err != nil {
		tb.Fatal(err)
	}
	return runBlast(tb, conn, g.Guest.Send, func(re string) (string, error) {
		err := g.Guest.Wait(re, 600*time.Second)
		return g.Guest.Output(), err
	}, g.net.Host.String(), mib)
}

func (g *tapGuest) dump(tb testing.TB) dumpResult {
	tb.Helper()
	if err := g.Dump(); err != nil {
		tb.Fatal(err)
	}
	return parseDump(tb, g.Guest.Output())
}

func tail(s string) string {
	if len(s) > 3000 {
		return s[:1500] + "\n...\n" + s[len(s)-1500:]
	}
	return s
}

func atoi(s string) uint64 {
	v, _ := strconv.ParseUint(s, 10, 64)
	return v
}

// blastResult is one blast: what the guest sent and the sink counted.
type blastResult struct {
	sent, datagrams, refused uint64
	arrived, arrivedDgrams   uint64
	guest                    time.Duration // the guest's measure of its sending
}

// MB/s of UDP payload the sink received over the guest's sending time.
func (r blastResult) mbps() float64 { return float64(r.arrived) / r.guest.Seconds() / 1e6 }

var blastLine = regexp.MustCompile(`blast: sent (\d+) bytes in (\d+) datagrams to \S+ port (\d+) in (\d+) us, (\d+) refused`)

// runBlast types the blast command to server on a guest's console (send;
// await waits for a line and returns the console) and counts what reaches
// sink, which it closes.
func runBlast(tb testing.TB, sink net.Conn, send func(string) error, await func(re string) (string, error), server string, mib int) blastResult {
	tb.Helper()
	defer sink.Close()
	var bytes, dgrams atomic.Uint64
	go func() {
		buf := make([]byte, 65536)
		for {
			n, err := sink.Read(buf)
			if err != nil {
				return
			}
			bytes.Add(uint64(n))
			dgrams.Add(1)
		}
	}()
	if err := send(fmt.Sprintf("blast -s %s %d", server, mib)); err != nil {
		tb.Fatal(err)
	}
	console, err := await(blastLine.String())
	if err != nil {
		tb.Fatalf("%v\n%s", err, tail(console))
	}
	g := blastLine.FindStringSubmatch(console)
	r := blastResult{sent: atoi(g[1]), datagrams: atoi(g[2]), guest: time.Duration(atoi(g[4])) * time.Microsecond, refused: atoi(g[5])}
	// What is still in the network's queues arrives within moments.
	for last, quiet := uint64(0), 0; quiet < 5; time.Sleep(50 * time.Millisecond) {
		if n := dgrams.Load(); n == last {
			quiet++
		} else {
			last, quiet = n, 0
		}
	}
	r.arrived, r.arrivedDgrams = bytes.Load(), dgrams.Load()
	return r
}

// dumpResult is one dump as the guest reports it.
type dumpResult struct {
	bytes, zero uint64        // VMCORE bytes sent, declared zero
	elapsed     time.Duration // the client's Dump, as the guest measured it
	transfer    time.Duration // its first VMCORE to the KDH's ACK
	acks        uint64        // ACK datagrams the guest received
	phases      [6]uint64     // µs: zero-scan copy checksum driver ack-wait other
	phaseTotal  uint64        // µs
}

var phaseNames = [6]string{"zero-scan", "copy", "checksum", "driver", "ack-wait", "other"}

var (
	statsLine    = regexp.MustCompile(`dumped (\d+) bytes \((\d+) zero, not sent\) in (\d+) ms`)
	transferLine = regexp.MustCompile(`; (\d+) ACK datagrams, \d+ ACKs from repeats; window \d+ \(peak \d+\), RTT \d+ us \(smoothed \d+ us\); transfer (\d+) us, its tail`)
	phasesLine   = regexp.MustCompile(`netdump phases \(us\): zero-scan (\d+) copy (\d+) checksum (\d+) driver (\d+) ack-wait (\d+) other (\d+) of (\d+) \(`)
)

// goodput is the MB/s of non-zero data over the guest's dump time.
func (r dumpResult) goodput() float64 { return float64(r.bytes) / r.elapsed.Seconds() / 1e6 }

// transferGoodput is the MB/s of non-zero data over the transfer alone:
// like a blast's, without ARP, the HERALD and FINISHED (which a server
// answers once the dump is on disk).
func (r dumpResult) transferGoodput() float64 {
	return float64(r.bytes) / r.transfer.Seconds() / 1e6
}

// parseDump reads a dump's statistics and phases from the guest's console.
func parseDump(tb testing.TB, console string) dumpResult {
	tb.Helper()
	g := statsLine.FindStringSubmatch(console)
	p := phasesLine.FindStringSubmatch(console)
	x := transferLine.FindStringSubmatch(console)
	if g == nil || p == nil || x == nil {
		tb.Fatalf("no statistics, phases or transfer line:\n%s", tail(console))
	}
	var r dumpResult
	r.zero = atoi(g[2])
	r.bytes = atoi(g[1]) - r.zero
	for i := range r.phases {
		r.phases[i] = atoi(p[i+1])
	}
	r.phaseTotal = atoi(p[7])
	r.elapsed = time.Duration(r.phaseTotal) * time.Microsecond
	r.acks = atoi(x[1])
	r.transfer = time.Duration(atoi(x[2])) * time.Microsecond
	return r
}

// TestBlastAndPhases: the blast's datagrams reach the sink, and a dump's
// phases, as the guest counts them, add up to the dump's time with the
// named phases holding most of it. Hold the QEMU lock.
func TestBlastAndPhases(t *testing.T) {
	m := start(t, image(t, boot.StockGo, nil), "virtio-mmio", 64)
	b := m.blast(t, 8)
	t.Logf("blast: %+v, %.1f MB/s", b, b.mbps())
	if b.sent != 8<<20 || b.arrivedDgrams == 0 || b.arrivedDgrams > b.datagrams {
		t.Errorf("blast sent %d bytes in %d datagrams, the sink counted %d in %d", b.sent, b.datagrams, b.arrived, b.arrivedDgrams)
	}
	if b.arrivedDgrams < b.datagrams*99/100 {
		t.Errorf("the sink counted %d of %d datagrams", b.arrivedDgrams, b.datagrams)
	}
	// The network stack gets the NIC back: the dump that follows works.
	d := m.dump(t)
	t.Logf("dump: %d bytes (%d zero) in %v, phases (us) %v of %d", d.bytes, d.zero, d.elapsed, d.phases, d.phaseTotal)
	var sum, named uint64
	for i, v := range d.phases {
		sum += v
		if phaseNames[i] != "other" {
			named += v
		}
	}
	if sum > d.phaseTotal || sum+sum/50+6 < d.phaseTotal {
		t.Errorf("phases sum to %d us of %d", sum, d.phaseTotal)
	}
	ms := atoi(statsLine.FindStringSubmatch(m.Console())[3])
	if diff := int64(d.phaseTotal/1000) - int64(ms); diff < -int64(ms)/20-2 || diff > int64(ms)/20+2 {
		t.Errorf("phases cover %d us, the dump took %d ms", d.phaseTotal, ms)
	}
	if named < d.phaseTotal/2 {
		t.Errorf("the named phases hold %d us of %d: the accounting misses where the time goes", named, d.phaseTotal)
	}
	for i, v := range d.phases[:5] {
		if v == 0 {
			t.Errorf("phase %s counted nothing", phaseNames[i])
		}
	}
}
