package main

import (
	"bufio"
	"bytes"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/tamadump/tamadump/netdump/server/servertest"
	"github.com/tamadump/tamadump/netdump/wire"
)

var binary string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "netdumpd-test")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	binary = filepath.Join(dir, "netdumpd")
	out, err := exec.Command("go", "build", "-o", binary, ".").CombinedOutput()
	if err != nil {
		fmt.Fprintf(os.Stderr, "go build: %v\n%s", err, out)
		os.RemoveAll(dir)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

func TestUsage(t *testing.T) {
	out, err := exec.Command(binary, "-h").CombinedOutput()
	if err != nil {
		t.Fatalf("-h: %v", err)
	}
	for _, want := range []string{"usage: netdumpd [-D] [-a <bind_addr>] [-d <dumpdir>] [-i <script>] [-P <pidfile>]", "-port", "-ackport", "syslog"} {
		if !strings.Contains(string(out), want) {
			t.Errorf("usage lacks %q:\n%s", want, out)
		}
	}
	cmd := exec.Command(binary, "-Z")
	out, _ = cmd.CombinedOutput()
	if cmd.ProcessState.ExitCode() != 1 || !strings.Contains(string(out), "usage:") {
		t.Errorf("-Z: exit %d, output:\n%s", cmd.ProcessState.ExitCode(), out)
	}
}

func TestStartupErrors(t *testing.T) {
	tmp := t.TempDir()
	file := filepath.Join(tmp, "file")
	os.WriteFile(file, nil, 0644)
	pid := filepath.Join(tmp, "pid")
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"-a", "bogus"}, "invalid bind IP specified"},
		{[]string{"-d", filepath.Join(tmp, "none")}, "invalid dump location specified"},
		{[]string{"-d", file}, "Dump location is not a directory"},
		{[]string{"-d", tmp, "-i", filepath.Join(tmp, "none")}, "cannot access"},
		{[]string{"-d", tmp, "-i", file}, "cannot access"},
	} {
		cmd := exec.Command(binary, append([]string{"-D", "-P", pid}, tc.args...)...)
		out, _ := cmd.CombinedOutput()
		if cmd.ProcessState.ExitCode() != 1 || !strings.Contains(string(out), tc.want) {
			t.Errorf("%v: exit %d, want 1 and %q; output:\n%s", tc.args, cmd.ProcessState.ExitCode(), tc.want, out)
		}
	}
}

func TestPidfileLocked(t *testing.T) {
	pid := filepath.Join(t.TempDir(), "netdumpd.pid")
	f, err := os.OpenFile(pid, os.O_RDWR|os.O_CREATE, 0600)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(binary, "-D", "-P", pid, "-d", t.TempDir())
	out, _ := cmd.CombinedOutput()
	if cmd.ProcessState.ExitCode() != 1 || !strings.Contains(string(out), "netdumpd is already running") {
		t.Errorf("exit %d, output:\n%s", cmd.ProcessState.ExitCode(), out)
	}
}

// freePort finds a UDP port free on ip.
func freePort(t *testing.T, ip net.IP) int {
	c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: ip})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	return c.LocalAddr().(*net.UDPAddr).Port
}

// daemon is a netdumpd process started with -D on a loopback address of
// its own in 127.0.21.0/24.
type daemon struct {
	t       *testing.T
	cmd     *exec.Cmd
	dir     string
	ip      net.IP
	port    int
	ackPort int
	pid     string
	lines   chan string
	stderr  *syncBuf
	mu      sync.Mutex
	log     []string
}

// syncBuf is a buffer a process writes while the test reads it.
type syncBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuf) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuf) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// has reports whether want reaches the buffer within a few seconds: the
// process's standard error arrives through a pipe that exec copies on its
// own, so it may trail what the log on standard output already says.
func (s *syncBuf) has(want string) bool {
	for deadline := time.Now().Add(5 * time.Second); !strings.Contains(s.String(), want); time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			return false
		}
	}
	return true
}

// startDaemon runs netdumpd on ip with dump directory dir; extra flags
// are appended.
func startDaemon(t *testing.T, ip net.IP, dir string, ackPort int, extra ...string) *daemon {
	t.Helper()
	d := &daemon{t: t, dir: dir, ip: ip, port: freePort(t, ip), ackPort: ackPort, pid: filepath.Join(t.TempDir(), "pid"),
		lines: make(chan string, 1000), stderr: &syncBuf{}}
	args := append([]string{"-D", "-a", ip.String(), "-d", dir, "-P", d.pid,
		"-port", fmt.Sprint(d.port), "-ackport", fmt.Sprint(ackPort)}, extra...)
	d.cmd = exec.Command(binary, args...)
	stdout, err := d.cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	d.cmd.Stderr = d.stderr
	if err := d.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.cmd.Process.Kill(); d.cmd.Wait() })
	go func() {
		s := bufio.NewScanner(stdout)
		for s.Scan() {
			d.mu.Lock()
			d.log = append(d.log, s.Text())
			d.mu.Unlock()
			select {
			case d.lines <- s.Text():
			default:
			}
		}
		close(d.lines)
	}()
	d.waitLine("Waiting for clients.")
	return d
}

// waitLine waits for a log line containing want and returns it.
func (d *daemon) waitLine(want string) string {
	d.t.Helper()
	timeout := time.After(20 * time.Second)
	for {
		select {
		case l, ok := <-d.lines:
			if !ok {
				d.t.Fatalf("netdumpd exited before %q; stderr:\n%s", want, d.stderr.String())
			}
			if strings.Contains(l, want) {
				return l
			}
		case <-timeout:
			d.t.Fatalf("no %q", want)
		}
	}
}

func (d *daemon) logCount(substr string) int {
	d.mu.Lock()
	defer d.mu.Unlock()
	n := 0
	for _, l := range d.log {
		if strings.Contains(l, substr) {
			n++
		}
	}
	return n
}

// find returns the first log line containing substr.
func (d *daemon) find(substr string) string {
	d.t.Helper()
	d.mu.Lock()
	defer d.mu.Unlock()
	for _, l := range d.log {
		if strings.Contains(l, substr) {
			return l
		}
	}
	d.t.Fatalf("no %q logged", substr)
	return ""
}

func (d *daemon) herald() netip.AddrPort {
	a, _ := netip.AddrFromSlice(d.ip.To4())
	return netip.AddrPortFrom(a, uint16(d.port))
}

// client is a dumping host on ip, sending to d.
func (d *daemon) client(ip net.IP) *servertest.Client {
	return servertest.New(servertest.UDP(clientConn(d.t, ip, d.ackPort)), d.herald())
}

// clientConn is a client's socket, bound to ip:port.
func clientConn(t *testing.T, ip net.IP, port int) *net.UDPConn {
	t.Helper()
	conn, err := net.ListenUDP("udp4", &net.UDPAddr{IP: ip, Port: port})
	if err != nil {
		t.Fatal(err)
	}
	conn.SetReadBuffer(1 << 20)
	t.Cleanup(func() { conn.Close() })
	return conn
}

func (d *daemon) read(name string) []byte {
	b, _ := os.ReadFile(filepath.Join(d.dir, name))
	return b
}

// TestRun starts netdumpd -D on loopback with custom ports, takes one
// dump, and stops it with SIGTERM.
func TestRun(t *testing.T) {
	dumps := filepath.Join(t.TempDir(), "crash")
	os.Mkdir(dumps, 0755)
	ip := net.IPv4(127, 0, 21, 200)
	d := startDaemon(t, ip, dumps, freePort(t, ip), "-tpass", "100ms", "-n")
	if !d.stderr.has("listening on IP 127.0.21.200") {
		t.Errorf("stderr:\n%s", d.stderr.String())
	}
	pid := d.pid
	if b, err := os.ReadFile(pid); err != nil || strings.TrimSpace(string(b)) != fmt.Sprint(d.cmd.Process.Pid) {
		t.Errorf("pidfile: %q, %v", b, err)
	}
	c := d.client(ip)
	if err := c.Herald(""); err != nil {
		t.Fatal(err)
	}
	core := bytes.Repeat([]byte("netdumpd"), 4096)
	if err := c.Send(servertest.Msg{Type: wire.VMCore, Payload: core[:1400]}, servertest.Msg{Type: wire.VMCore, Offset: 1400, Payload: core[1400:]}); err != nil {
		t.Fatal(err)
	}
	if err := c.Finish(); err != nil {
		t.Fatal(err)
	}
	host := "127.0.21.200"
	d.waitLine("Completed dump from client " + host + " [127.0.21.200]")
	if got := d.read("vmcore." + host + ".last"); !bytes.Equal(got, core) {
		t.Errorf("vmcore: %d bytes", len(got))
	}
	// A second dump left open is closed as stopped at shutdown.
	if err := c.Herald(""); err != nil {
		t.Fatal(err)
	}
	if err := c.Send(servertest.Msg{Type: wire.VMCore, Payload: core[:10]}); err != nil {
		t.Fatal(err)
	}
	d.waitLine("New dump from client " + host + " [127.0.21.200] (to ./vmcore." + host + ".1)")

	d.cmd.Process.Signal(syscall.SIGTERM)
	d.waitLine("Shutting down...")
	d.waitLine("Client 127.0.21.200: dump interrupted by the shutdown")
	if err := d.cmd.Wait(); err != nil {
		t.Fatalf("exit: %v; stderr:\n%s", err, d.stderr.String())
	}
	if _, err := os.Stat(pid); !os.IsNotExist(err) {
		t.Errorf("pidfile left behind: %v", err)
	}
	if info := string(d.read("info." + host + ".1")); !strings.HasSuffix(info, "Dump incomplete: netdumpd stopped during the dump\n") {
		t.Errorf("info.1:\n%s", info)
	}
}

// TestKill is the durability promise, with SIGKILL: data acknowledged
// more than -flush before the kill is in the file afterwards, the info
// file says the dump was in progress, and a restarted netdumpd marks it.
// The negative control is a -flush longer than the test: then the
// acknowledged data is lost, and the check sees it.
func TestKill(t *testing.T) {
	ip := net.IPv4(127, 0, 21, 201)
	ackPort := freePort(t, ip)
	core := bytes.Repeat([]byte("durable!"), 12000) // 96000 bytes, less than the write-back buffer
	conn := clientConn(t, ip, ackPort)
	for _, tc := range []struct {
		flush string
		kept  bool
	}{{"500ms", true}, {"1h", false}} {
		dir := t.TempDir()
		d := startDaemon(t, ip, dir, ackPort, "-n", "-flush", tc.flush)
		c := servertest.New(servertest.UDP(conn), d.herald())
		if err := c.Herald(""); err != nil {
			t.Fatal(err)
		}
		for off := 0; off < len(core); off += 46 * 1448 {
			var batch []servertest.Msg
			for o := off; o < min(off+46*1448, len(core)); o += 1448 {
				batch = append(batch, servertest.Msg{Type: wire.VMCore, Offset: uint64(o), Payload: core[o:min(o+1448, len(core))]})
			}
			if err := c.Send(batch...); err != nil {
				t.Fatal(err)
			}
		}
		time.Sleep(1500 * time.Millisecond) // the promise is 500ms
		d.cmd.Process.Signal(syscall.SIGKILL)
		d.cmd.Wait()
		got := d.read("vmcore.127.0.21.201.0")
		if tc.kept && !bytes.Equal(got, core) {
			t.Errorf("-flush %s: %d of %d acknowledged bytes in the file after SIGKILL", tc.flush, len(got), len(core))
		}
		if !tc.kept && len(got) == len(core) {
			t.Errorf("-flush %s: the data was written anyway: the check cannot see a loss", tc.flush)
		}
		if info := string(d.read("info.127.0.21.201.0")); info != "Dump from 127.0.21.201 [127.0.21.201]\nDump incomplete: in progress\n" {
			t.Errorf("info after SIGKILL:\n%s", info)
		}
		d = startDaemon(t, ip, dir, ackPort, "-n")
		if d.logCount("left incomplete by an earlier netdumpd; marked") != 1 {
			t.Errorf("no restart log line; stderr:\n%s", d.stderr.String())
		}
		if info := string(d.read("info.127.0.21.201.0")); !strings.HasSuffix(info, "Dump incomplete: netdumpd stopped during the dump\n") {
			t.Errorf("info after restart:\n%s", info)
		}
		d.cmd.Process.Signal(syscall.SIGTERM)
		d.cmd.Wait()
	}
}
