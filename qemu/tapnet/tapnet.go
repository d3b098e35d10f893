// Package tapnet runs a guest on a kernel network, as a real machine
// dumps: a network namespace holding a tap device that QEMU's NIC is
// attached to, with the netdumpd binary listening on the tap's host
// address. Unlike the user-space network, netdumpd here is its own
// process, so its CPU time and peak memory can be read from /proc. It
// needs root (a namespace and a tap device) and iproute2.
package tapnet

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/tamadump/tamadump/netdump/loadgen"
	"github.com/tamadump/tamadump/netdump/transport"
	"github.com/tamadump/tamadump/qemu/boot"
)

// Net is a namespace with a tap device whose host side has Host; the
// guest takes Guest on the same /24.
type Net struct {
	NS, Tap     string
	Host, Guest netip.Addr
}

// Usable says why this machine cannot make a Net, or nil.
func Usable() error {
	if os.Geteuid() != 0 {
		return fmt.Errorf("the tap path needs root (a network namespace and a tap device)")
	}
	if _, err := exec.LookPath("ip"); err != nil {
		return fmt.Errorf("the tap path needs iproute2's ip")
	}
	return nil
}

// New makes namespace name with tap device name+"-tap": the host is
// prefix's .1 and the guest .2. Loopback-range prefixes work (the
// namespace routes them on the tap), so each test can keep to its own.
func New(name string, prefix netip.Prefix) (*Net, error) {
	if err := Usable(); err != nil {
		return nil, err
	}
	base := prefix.Masked().Addr()
	n := &Net{NS: name, Tap: name + "-tap", Host: base.Next(), Guest: base.Next().Next()}
	exec.Command("ip", "netns", "del", n.NS).Run() //nolint:errcheck // a leftover of a killed run
	if err := run("ip", "netns", "add", n.NS); err != nil {
		return nil, err
	}
	for _, args := range [][]string{
		{"ip", "link", "set", "lo", "up"},
		{"ip", "tuntap", "add", n.Tap, "mode", "tap"},
		{"sysctl", "-q", "-w", "net.ipv4.conf.all.route_localnet=1"},
		{"sysctl", "-q", "-w", "net.ipv4.conf." + n.Tap + ".route_localnet=1"},
		{"ip", "addr", "add", fmt.Sprintf("%s/%d", n.Host, prefix.Bits()), "dev", n.Tap},
		{"ip", "link", "set", n.Tap, "up"},
	} {
		if err := run(n.in(args...)...); err != nil {
			n.Close()
			return nil, err
		}
	}
	return n, nil
}

// Close removes the namespace and with it the tap.
func (n *Net) Close() { exec.Command("ip", "netns", "del", n.NS).Run() } //nolint:errcheck

func (n *Net) in(args ...string) []string {
	return append([]string{"ip", "netns", "exec", n.NS}, args...)
}

func run(args ...string) error {
	if out, err := exec.Command(args[0], args[1:]...).CombinedOutput(); err != nil {
		return fmt.Errorf("%s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return nil
}

// BuildNetdumpd builds the netdumpd binary into dir.
func BuildNetdumpd(dir string) (string, error) {
	bin := filepath.Join(dir, "netdumpd")
	cmd := exec.Command("go", "build", "-o", bin, "./cmd/netdumpd")
	cmd.Dir = boot.ModuleRoot()
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("building netdumpd: %v\n%s", err, out)
	}
	return bin, nil
}

// ForTest is New for a test or benchmark, removed when it ends, with
// the netdumpd binary built for it; it skips tb where Usable says no.
func ForTest(tb testing.TB, name string, prefix netip.Prefix) (n *Net, netdumpd string) {
	tb.Helper()
	if err := Usable(); err != nil {
		tb.Skip("SKIP: " + err.Error())
	}
	n, err := New(name, prefix)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(n.Close)
	if netdumpd, err = BuildNetdumpd(tb.TempDir()); err != nil {
		tb.Fatal(err)
	}
	return n, netdumpd
}

// Netdumpd starts netdumpd (the binary bin) on the host address, saving
// into dir, with more flags, and waits until it listens.
func (n *Net) Netdumpd(bin, dir string, flags ...string) (*Proc, error) {
	args := append([]string{bin, "-D", "-n", "-a", n.Host.String(), "-d", dir, "-P", filepath.Join(dir, "pid")}, flags...)
	p, err := start(n.in(args...), true)
	if err != nil {
		return nil, err
	}
	if err := p.Wait("Waiting for clients", 30*time.Second); err != nil {
		p.Close()
		return nil, err
	}
	return p, nil
}

// QEMU boots img with ramMiB of RAM and nic (one of boot.NICs) on the tap,
// its console on the returned Proc. img must name Host as its server and
// Guest as its address.
func (n *Net) QEMU(img *boot.Image, ramMiB int, nic string) (*Proc, error) {
	dev, err := boot.DeviceArgs(nic)
	if err != nil {
		return nil, err
	}
	args := append(n.in("qemu-system-x86_64"), img.QEMUArgs(ramMiB)...)
	args = append(args, "-serial", "stdio", "-netdev", "tap,id=n0,ifname="+n.Tap+",script=no,downscript=no")
	return start(append(args, dev...), false)
}

// Crash is one dump through the tap: the guest and the netdumpd that
// saved it (both still running: the caller closes them), the server's
// peak resident set before the panic, its CPU time and the wall time from
// the panic to its "Completed dump". The guest's closing line is on its
// console.
type Crash struct {
	Guest, Server *Proc
	IdleRSS       uint64
	CPU, Elapsed  time.Duration
}

// Crash starts a fresh netdumpd (bin, saving into dir), boots img with
// ramMiB on nic, panics it once it is READY and waits for the dump to
// complete.
func (n *Net) Crash(bin, dir string, img *boot.Image, ramMiB int, nic string) (*Crash, error) {
	c, err := n.Boot(bin, dir, img, ramMiB, nic)
	if err != nil {
		return nil, err
	}
	if err := c.Dump(); err != nil {
		c.Close()
		return nil, err
	}
	return c, nil
}

// Boot starts a fresh netdumpd (bin, saving into dir) and boots img with
// ramMiB on nic, returning once the guest is READY: Dump then crashes it.
func (n *Net) Boot(bin, dir string, img *boot.Image, ramMiB int, nic string) (*Crash, error) {
	srv, err := n.Netdumpd(bin, dir)
	if err != nil {
		return nil, err
	}
	q, err := n.QEMU(img, ramMiB, nic)
	if err != nil {
		srv.Close()
		return nil, err
	}
	c := &Crash{Guest: q, Server: srv}
	if err := q.Wait("READY", 300*time.Second); err != nil {
		c.Close()
		return nil, err
	}
	return c, nil
}

// Dump panics the booted guest and waits for its dump to complete and
// for the guest's closing line.
func (c *Crash) Dump() error {
	var err error
	if c.IdleRSS, err = c.Server.PeakRSS(); err != nil {
		return err
	}
	cpu, start := c.Server.CPU(), time.Now()
	if err := c.Guest.Send("panic boom"); err != nil {
		return err
	}
	if err := c.Server.Wait("Completed dump", 900*time.Second); err != nil {
		return fmt.Errorf("%v\nconsole:\n%s", err, lastLines(c.Guest.Output(), 40))
	}
	c.Elapsed, c.CPU = time.Since(start), c.Server.CPU()-cpu
	return c.Guest.Wait(boot.DumpReported, 60*time.Second)
}

// ListenUDP opens a UDP socket on the host address and port in the
// namespace with a receive buffer of rcvbuf bytes (past
// net.core.rmem_max where the process may). A socket stays in the namespace it was made in, so
// the calling thread enters it for the call; were the way back refused,
// the thread stays locked and so dies with this goroutine instead of
// serving others in the namespace.
func (n *Net) ListenUDP(port, rcvbuf int) (*net.UDPConn, error) {
	runtime.LockOSThread()
	home := true // the thread is in this process's namespace
	defer func() {
		if home {
			runtime.UnlockOSThread()
		}
	}()
	self, err := os.Open("/proc/thread-self/ns/net")
	if err != nil {
		return nil, err
	}
	defer self.Close()
	ns, err := os.Open("/var/run/netns/" + n.NS)
	if err != nil {
		return nil, err
	}
	defer ns.Close()
	if err := unix.Setns(int(ns.Fd()), unix.CLONE_NEWNET); err != nil {
		return nil, fmt.Errorf("entering namespace %s: %w", n.NS, err)
	}
	conn, err := net.ListenUDP("udp4", net.UDPAddrFromAddrPort(netip.AddrPortFrom(n.Host, uint16(port))))
	home = unix.Setns(int(self.Fd()), unix.CLONE_NEWNET) == nil
	if err != nil {
		return nil, err
	}
	if _, _, err := transport.SizeReadBuffer(conn, rcvbuf); err != nil {
		conn.Close()
		return nil, fmt.Errorf("sizing the receive buffer: %w", err)
	}
	return conn, nil
}

// Close stops the guest and the server.
func (c *Crash) Close() {
	c.Guest.Close()
	c.Server.Close()
}

// Proc is a process in the namespace whose output is kept.
type Proc struct {
	cmd   *exec.Cmd
	stdin io.WriteCloser

	mu    sync.Mutex
	cond  *sync.Cond
	text  strings.Builder
	ended bool
}

// start runs args; with both, its standard error is in its output too.
func start(args []string, both bool) (*Proc, error) {
	p := &Proc{cmd: exec.Command(args[0], args[1:]...)}
	p.cond = sync.NewCond(&p.mu)
	out, err := p.cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if both {
		p.cmd.Stderr = p.cmd.Stdout
	} else {
		p.cmd.Stderr = os.Stderr
	}
	if p.stdin, err = p.cmd.StdinPipe(); err != nil {
		return nil, err
	}
	if err := p.cmd.Start(); err != nil {
		return nil, err
	}
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			p.mu.Lock()
			p.text.WriteString(sc.Text() + "\n")
			p.cond.Broadcast()
			p.mu.Unlock()
		}
		p.mu.Lock()
		p.ended = true
		p.cond.Broadcast()
		p.mu.Unlock()
	}()
	return p, nil
}

// Wait waits until the output matches the regular expression re,
// failing when the process's output ends or after timeout.
func (p *Proc) Wait(re string, timeout time.Duration) error {
	rx, err := regexp.Compile(re)
	if err != nil {
		return err
	}
	expired := false
	t := time.AfterFunc(timeout, func() { p.mu.Lock(); expired = true; p.cond.Broadcast(); p.mu.Unlock() })
	defer t.Stop()
	p.mu.Lock()
	defer p.mu.Unlock()
	for !rx.MatchString(p.text.String()) {
		if p.ended || expired {
			return fmt.Errorf("%q did not appear within %v:\n%s", re, timeout, lastLines(p.text.String(), 40))
		}
		p.cond.Wait()
	}
	return nil
}

// Send types line on the process's standard input (the guest's console).
func (p *Proc) Send(line string) error {
	_, err := io.WriteString(p.stdin, line+"\r")
	return err
}

// Output is everything the process printed so far.
func (p *Proc) Output() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.text.String()
}

// Close kills the process and waits for it.
func (p *Proc) Close() {
	p.cmd.Process.Kill() //nolint:errcheck // it may have exited
	p.cmd.Wait()         //nolint:errcheck
}

// `ip netns exec` enters the namespace and then executes the command, so
// the process it started is the command itself.

// CPU is the process's user and system time so far.
func (p *Proc) CPU() time.Duration {
	t, _ := loadgen.CPUTime(p.cmd.Process.Pid) // 0 once it is gone
	return t
}

var hwm = regexp.MustCompile(`VmHWM:\s+(\d+) kB`)

// PeakRSS is the process's largest resident set so far (VmHWM), in bytes.
func (p *Proc) PeakRSS() (uint64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", p.cmd.Process.Pid))
	if err != nil {
		return 0, err
	}
	m := hwm.FindSubmatch(b)
	if m == nil {
		return 0, fmt.Errorf("no VmHWM in /proc/%d/status", p.cmd.Process.Pid)
	}
	kb, err := strconv.ParseUint(string(m[1]), 10, 64)
	return kb << 10, err
}

func lastLines(s string, n int) string {
	l := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(l) > n {
		l = l[len(l)-n:]
	}
	return strings.Join(l, "\n")
}
