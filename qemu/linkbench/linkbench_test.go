package linkbench

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/tamadump/tamadump/debugnet/linktest"
	"github.com/tamadump/tamadump/qemu/boot"
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
	retx     int64
	hostCPU  time.Duration // the host side's CPU time meanwhile
	datagram int64         // datagrams the guest sent, retransmissions included
}

// stats reads the guest's closing line: "dumped B bytes (Z zero, not sent)
// in M ms, R retransmissions".
var stats = regexp.MustCompile(`dumped (\d+) bytes \((\d+) zero, not sent\) in \d+ ms, (\d+) retransmissions.*`)

func (r *result) parse(b *testing.B, console string) {
	m := stats.FindStringSubmatch(console)
	if m == nil {
		b.Fatalf("no closing statistics on the console:\n%s", tail(console))
	}
	total, _ := strconv.ParseInt(m[1], 10, 64)
	zero, _ := strconv.ParseInt(m[2], 10, 64)
	r.retx, _ = strconv.ParseInt(m[3], 10, 64)
	r.sent = total - zero
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
	if _, err := m.Expect(`retransmissions`, 30*time.Second); err != nil {
		b.Fatal(err)
	}
	r.parse(b, m.Console())
	if testing.Verbose() {
		b.Logf("%s", stats.FindString(m.Console()))
	}
	return r
}

func report(b *testing.B, rs []result) {
	var el, sent, retx, cpu, dg float64
	for _, r := range rs {
		el += r.elapsed.Seconds()
		sent += float64(r.sent)
		retx += float64(r.retx)
		cpu += r.hostCPU.Seconds()
		dg += float64(r.datagram)
	}
	n := float64(len(rs))
	b.ReportMetric(sent/el/1e6, "MB/s")
	b.ReportMetric(el/n*1e3, "dump-ms")
	b.ReportMetric(retx/n, "retransmits/op")
	b.ReportMetric(cpu/dg*1e6, "host-CPU-µs/datagram")
}

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
// lossy relay with the fault matrix. Hold the QEMU lock.
func BenchmarkE2EUsernet(b *testing.B) {
	cases := append([]struct {
		name string
		f    linktest.Faults
	}{{"clean", linktest.Faults{}}}, lossy...)
	for i, tc := range cases {
		b.Run(tc.name, func(b *testing.B) {
			image(b)
			var rs []result
			for range b.N {
				f := tc.f
				f.Seed = uint64(i*100 + len(rs) + 1)
				rs = append(rs, overUsernet(b, f))
			}
			report(b, rs)
		})
	}
}

// Names of what the tap benchmark creates (the client track's prefix).
const (
	netns   = "client-ns0"
	tapName = "client-tap0"
)

// Inside the namespace the host has 127.0.22.1 and the guest 127.0.22.2
// on the tap (route_localnet lets loopback-range addresses on it).
const (
	hostAddr  = "127.0.22.1"
	guestAddr = "127.0.22.2"
)

func run(b *testing.B, args ...string) {
	b.Helper()
	if out, err := exec.Command(args[0], args[1:]...).CombinedOutput(); err != nil {
		b.Fatalf("%s: %v\n%s", strings.Join(args, " "), err, out)
	}
}

// tapNetwork makes the namespace and its tap and removes them when b ends.
func tapNetwork(b *testing.B) {
	if os.Geteuid() != 0 {
		b.Skip("SKIP: the tap path needs root (a network namespace and a tap device)")
	}
	if _, err := exec.LookPath("ip"); err != nil {
		b.Skip("SKIP: the tap path needs iproute2's ip")
	}
	exec.Command("ip", "netns", "del", netns).Run() //nolint:errcheck // a leftover of a killed run
	run(b, "ip", "netns", "add", netns)
	b.Cleanup(func() { exec.Command("ip", "netns", "del", netns).Run() }) //nolint:errcheck
	in := func(args ...string) { run(b, append([]string{"ip", "netns", "exec", netns}, args...)...) }
	in("ip", "link", "set", "lo", "up")
	in("ip", "tuntap", "add", tapName, "mode", "tap")
	in("sysctl", "-q", "-w", "net.ipv4.conf.all.route_localnet=1")
	in("sysctl", "-q", "-w", "net.ipv4.conf."+tapName+".route_localnet=1")
	in("ip", "addr", "add", hostAddr+"/24", "dev", tapName)
	in("ip", "link", "set", tapName, "up")
}

// netdumpd builds netdumpd once per benchmark run.
func netdumpd(b *testing.B) string {
	b.Helper()
	bin := filepath.Join(imgDir, "netdumpd")
	if _, err := os.Stat(bin); err == nil {
		return bin
	}
	cmd := exec.Command("go", "build", "-o", bin, "./cmd/netdumpd")
	cmd.Dir = boot.ModuleRoot()
	if out, err := cmd.CombinedOutput(); err != nil {
		b.Fatalf("building netdumpd: %v\n%s", err, out)
	}
	return bin
}

// lineWaiter reads a process's output line by line and reports when a
// line containing a string has appeared.
type lineWaiter struct {
	mu    sync.Mutex
	cond  *sync.Cond
	text  strings.Builder
	ended bool
}

func newLineWaiter(r io.Reader) *lineWaiter {
	w := &lineWaiter{}
	w.cond = sync.NewCond(&w.mu)
	go func() {
		sc := bufio.NewScanner(r)
		for sc.Scan() {
			w.mu.Lock()
			w.text.WriteString(sc.Text() + "\n")
			w.cond.Broadcast()
			w.mu.Unlock()
		}
		w.mu.Lock()
		w.ended = true
		w.cond.Broadcast()
		w.mu.Unlock()
	}()
	return w
}

func (w *lineWaiter) wait(s string, timeout time.Duration) error {
	t := time.AfterFunc(timeout, func() { w.mu.Lock(); w.ended = true; w.cond.Broadcast(); w.mu.Unlock() })
	defer t.Stop()
	w.mu.Lock()
	defer w.mu.Unlock()
	for !strings.Contains(w.text.String(), s) {
		if w.ended {
			return fmt.Errorf("%q did not appear:\n%s", s, tail(w.text.String()))
		}
		w.cond.Wait()
	}
	return nil
}

func (w *lineWaiter) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.text.String()
}

// procCPU is a process's CPU time from /proc (clock ticks of 10 ms).
func procCPU(pid int) time.Duration {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	f := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+2:]))
	u, _ := strconv.ParseInt(f[11], 10, 64)
	s, _ := strconv.ParseInt(f[12], 10, 64)
	return time.Duration(u+s) * 10 * time.Millisecond
}

// overTap dumps the guest through a tap device to netdumpd on the
// namespace's kernel network.
func overTap(b *testing.B) result {
	guest, err := image(b).With(map[string]string{"server": hostAddr, "client": guestAddr})
	if err != nil {
		b.Fatal(err)
	}
	dir := b.TempDir()
	srv := exec.Command("ip", "netns", "exec", netns, netdumpd(b), "-D", "-n", "-a", hostAddr, "-d", dir, "-P", filepath.Join(dir, "pid"))
	srvOut, _ := srv.StdoutPipe()
	srv.Stderr = srv.Stdout
	if err := srv.Start(); err != nil {
		b.Fatal(err)
	}
	defer func() { srv.Process.Kill(); srv.Wait() }() //nolint:errcheck
	log := newLineWaiter(srvOut)
	if err := log.wait("Waiting for clients", 30*time.Second); err != nil {
		b.Fatal(err)
	}
	args := append([]string{"netns", "exec", netns, "qemu-system-x86_64"}, guest.QEMUArgs(ramMiB)...)
	args = append(args, "-serial", "stdio", "-global", "virtio-mmio.force-legacy=false",
		"-netdev", "tap,id=n0,ifname="+tapName+",script=no,downscript=no",
		"-device", "virtio-net-device,netdev=n0,mac="+boot.GuestMAC)
	q := exec.Command("ip", args...)
	stdin, _ := q.StdinPipe()
	qOut, _ := q.StdoutPipe()
	q.Stderr = os.Stderr
	if err := q.Start(); err != nil {
		b.Fatal(err)
	}
	defer func() { q.Process.Kill(); q.Wait() }() //nolint:errcheck
	console := newLineWaiter(qOut)
	if err := console.wait("READY", 60*time.Second); err != nil {
		b.Fatal(err)
	}
	var r result
	cpu := procCPU(srv.Process.Pid)
	start := time.Now()
	io.WriteString(stdin, "panic boom\r") //nolint:errcheck
	if err := log.wait("Completed dump", 600*time.Second); err != nil {
		b.Fatalf("%v\nconsole:\n%s", err, tail(console.String()))
	}
	r.elapsed = time.Since(start)
	r.hostCPU = procCPU(srv.Process.Pid) - cpu
	if err := console.wait("retransmissions", 30*time.Second); err != nil {
		b.Fatal(err)
	}
	r.parse(b, console.String())
	return r
}

// BenchmarkE2ETap dumps the same guest through a tap device to netdumpd
// on a kernel network (a namespace the benchmark makes and removes): the
// reference the user-space network is compared with.
func BenchmarkE2ETap(b *testing.B) {
	image(b)
	tapNetwork(b)
	var rs []result
	for range b.N {
		rs = append(rs, overTap(b))
	}
	report(b, rs)
}
