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

// freePort finds a UDP port free on 127.0.0.1.
func freePort(t *testing.T) int {
	c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	return c.LocalAddr().(*net.UDPAddr).Port
}

// TestRun starts netdumpd -D on loopback with custom ports, takes one
// dump, and stops it with SIGTERM.
func TestRun(t *testing.T) {
	tmp := t.TempDir()
	dumps := filepath.Join(tmp, "crash")
	os.Mkdir(dumps, 0755)
	pid := filepath.Join(tmp, "netdumpd.pid")
	port, ackPort := freePort(t), freePort(t)
	cmd := exec.Command(binary, "-D", "-a", "127.0.0.1", "-d", dumps, "-P", pid,
		"-port", fmt.Sprint(port), "-ackport", fmt.Sprint(ackPort), "-tpass", "100ms")
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()
	lines := make(chan string, 100)
	go func() {
		s := bufio.NewScanner(stdout)
		for s.Scan() {
			lines <- s.Text()
		}
		close(lines)
	}()
	waitLine := func(want string) {
		t.Helper()
		timeout := time.After(10 * time.Second)
		for {
			select {
			case l, ok := <-lines:
				if !ok {
					t.Fatalf("netdumpd exited before %q; stderr:\n%s", want, stderr.String())
				}
				if strings.Contains(l, want) {
					return
				}
			case <-timeout:
				t.Fatalf("no %q", want)
			}
		}
	}
	waitLine("Waiting for clients.")
	if b, err := os.ReadFile(pid); err != nil || strings.TrimSpace(string(b)) != fmt.Sprint(cmd.Process.Pid) {
		t.Errorf("pidfile: %q, %v", b, err)
	}

	conn, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: ackPort})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	c := servertest.New(servertest.UDP(conn), netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), uint16(port)))
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
	// The system resolver names the client (often "localhost").
	host := "127.0.0.1"
	if names, err := net.LookupAddr(host); err == nil && len(names) > 0 {
		host, _, _ = strings.Cut(names[0], ".")
	}
	waitLine("Completed dump from client " + host + " [127.0.0.1]")
	if got, err := os.ReadFile(filepath.Join(dumps, "vmcore."+host+".last")); err != nil || !bytes.Equal(got, core) {
		t.Errorf("vmcore: %d bytes, %v", len(got), err)
	}
	// A second dump left open is closed as timed out at shutdown.
	if err := c.Herald(""); err != nil {
		t.Fatal(err)
	}
	waitLine("New dump from client " + host + " [127.0.0.1] (to ./vmcore." + host + ".1)")

	cmd.Process.Signal(syscall.SIGTERM)
	waitLine("Shutting down...")
	waitLine("Client 127.0.0.1 timed out")
	if err := cmd.Wait(); err != nil {
		t.Fatalf("exit: %v; stderr:\n%s", err, stderr.String())
	}
	if _, err := os.Stat(pid); !os.IsNotExist(err) {
		t.Errorf("pidfile left behind: %v", err)
	}
	if !strings.Contains(stderr.String(), "listening on IP 127.0.0.1") {
		t.Errorf("stderr:\n%s", stderr.String())
	}
	info, _ := os.ReadFile(filepath.Join(dumps, "info."+host+".1"))
	if !strings.HasSuffix(string(info), "Dump incomplete: client timed out\n") {
		t.Errorf("info.1:\n%s", info)
	}
}
