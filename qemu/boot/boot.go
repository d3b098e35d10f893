// Package boot runs the tamadump image as a whole machine under QEMU with
// a netdump server alongside, without root: the guest's virtio NIC is a
// `-netdev vhost-user` device this process runs in the guest's shared
// memory (qemu/vhostuser; an e1000 a `-netdev stream`), both joined to a
// user-space gVisor host (qemu/usernet) on which the netdumpd core
// listens. The serial console is a pipe the caller
// reads (Expect) and writes (Send). `make qemu` and the end-to-end tests
// use it.
package boot

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/tamadump/tamadump/debugnet/linktest"
	"github.com/tamadump/tamadump/netdump/server"
	"github.com/tamadump/tamadump/qemu"
	"github.com/tamadump/tamadump/qemu/usernet"
	"github.com/tamadump/tamadump/qemu/vhostuser"
)

// The virtual network: nothing on the host has these addresses; they live
// in the user-space stack and the guest only.
var (
	ServerAddr = netip.MustParsePrefix("127.0.9.1/24")
	GuestAddr  = netip.MustParseAddr("127.0.9.2")
	GuestMAC   = "52:54:00:12:34:56"
	// With Config.IPv6 the host also has ServerAddr6, where netdumpd
	// listens; the guest is GuestAddr6.
	ServerAddr6 = netip.MustParsePrefix("fd00:9::1/64")
	GuestAddr6  = netip.MustParseAddr("fd00:9::2")
)

// DumpReported matches the end of the image's closing line, which it
// prints once a dump is over: a wait for only part of that line can
// return before the rest of it (the transfer's figures) is on the console.
const DumpReported = `its tail \d+ us\r?\n`

// NICs the image supports, as QEMU devices.
var NICs = []string{"virtio-mmio", "virtio-mmio-legacy", "virtio-pci", "e1000"}

// Config describes one run.
type Config struct {
	// QEMUArgs boot the image (the board's machine, memory, kernel);
	// the network device and the serial console are added here.
	QEMUArgs []string
	NIC      string // one of NICs; "" means virtio-mmio
	DumpDir  string // where netdumpd writes
	// Console receives a copy of everything the guest prints.
	Console io.Writer
	// Log receives netdumpd's log lines.
	Log io.Writer
	// Ended is netdumpd's server.Config.Ended (the post-mortem report).
	Ended func(server.Ended)
	// Faults make the link between the guest and netdumpd lossy.
	Faults linktest.Faults
	// IPv6 puts netdumpd on ServerAddr6.
	IPv6 bool
	// Stream puts a virtio NIC on QEMU's stream back end instead of the
	// vhost-user device: no checksum offload, so the guest checksums
	// and copies each payload itself.
	Stream bool
}

// Settings are an image's server and client defaults for the user-space
// network Start puts it on, for Build and Image.With.
func Settings() map[string]string {
	return map[string]string{"server": ServerAddr.Addr().String(), "client": GuestAddr.String()}
}

// Machine is a running guest with its server.
type Machine struct {
	cmd    *exec.Cmd
	stdin  io.WriteCloser
	stack  *usernet.Stack
	netL   *net.UnixListener
	srv    *server.Server
	srvErr chan error
	tmp    string
	exited chan struct{}
	exit   error
	log    io.Writer // Config.Log, else stderr

	mu      sync.Mutex
	cond    *sync.Cond
	console bytes.Buffer
	logs    []string
	netConn net.Conn
	vhost   *vhostuser.Device
	relay   *linktest.Path
}

// logf reports what happened to the machine's host side.
func (m *Machine) logf(format string, args ...any) {
	fmt.Fprintf(m.log, "boot: "+format+"\n", args...)
}

// attach joins QEMU's network connection, when it comes, to the stack:
// a vhost-user device's, or a stream's.
func (m *Machine) attach(f linktest.Faults, vhost bool) {
	c, err := m.netL.AcceptUnix()
	if err != nil {
		return
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	m.netConn = c
	if vhost {
		m.vhost, m.relay = m.stack.AttachVhost(c, f)
		go func(d *vhostuser.Device) {
			if err := d.Err(); err != nil {
				m.logf("the guest's vhost-user NIC failed: %v", err)
			}
		}(m.vhost)
	} else {
		m.relay = m.stack.AttachStream(c, f)
	}
}

// Start boots the guest and the server.
func Start(cfg Config) (m *Machine, err error) {
	bin, nicArgs, err := machineArgs(cfg)
	if err != nil {
		return nil, err
	}
	tmp, err := os.MkdirTemp("", "tamadump-boot-")
	if err != nil {
		return nil, err
	}
	m = &Machine{tmp: tmp, exited: make(chan struct{}), srvErr: make(chan error, 1), log: cfg.Log}
	if m.log == nil {
		m.log = os.Stderr
	}
	m.cond = sync.NewCond(&m.mu)
	defer func() {
		if err != nil {
			m.Close()
		}
	}()
	ncfg, listen := usernet.Config{Addr: ServerAddr}, netip.IPv4Unspecified()
	if cfg.IPv6 {
		ncfg.Addr6, listen = ServerAddr6, ServerAddr6.Addr()
	}
	m.stack, err = usernet.New(ncfg)
	if err != nil {
		return nil, err
	}
	// A stream rather than datagrams: frames go in batches each way, and
	// a slow reader does not make the other end's sends fail.
	netPath := filepath.Join(tmp, "net.s")
	m.netL, err = net.ListenUnix("unix", &net.UnixAddr{Name: netPath, Net: "unix"})
	if err != nil {
		return nil, err
	}
	vhost := bin != qemu.ARMBinary && cfg.NIC != "e1000" && !cfg.Stream
	go m.attach(cfg.Faults, vhost)

	m.srv, err = server.New(server.Config{
		Dir:        cfg.DumpDir,
		Listen:     netip.AddrPortFrom(listen, 20023),
		Network:    m.stack.Network(),
		LookupAddr: func(context.Context, netip.Addr) (string, error) { return "", errors.New("numeric") },
		Ended:      cfg.Ended,
		Log: func(l server.Level, msg string) {
			if cfg.Log != nil {
				fmt.Fprintf(cfg.Log, "netdumpd: %s\n", msg)
			}
			m.mu.Lock()
			m.logs = append(m.logs, msg)
			m.cond.Broadcast()
			m.mu.Unlock()
		},
	})
	if err != nil {
		return nil, err
	}
	go func() { m.srvErr <- m.srv.Run() }()

	args := append([]string{}, cfg.QEMUArgs...)
	args = append(args, "-serial", "stdio")
	if vhost {
		// virtio's device is this process's (qemu/vhostuser), working
		// in the guest's RAM, which must be shared for it.
		mib, err := ramMiB(cfg.QEMUArgs)
		if err != nil {
			return nil, err
		}
		args = append(args, "-object", fmt.Sprintf("memory-backend-memfd,id=guestram,size=%dM,share=on", mib),
			"-machine", "memory-backend=guestram",
			"-chardev", "socket,id=vu0,path="+netPath, "-netdev", "vhost-user,id=n0,chardev=vu0")
	} else {
		args = append(args, "-netdev", "stream,id=n0,server=off,addr.type=unix,addr.path="+netPath)
	}
	args = append(args, nicArgs...)
	m.cmd = exec.Command(bin, args...)
	m.stdin, err = m.cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	out, err := m.cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	var stderr tail
	m.cmd.Stderr = &stderr
	if err := m.cmd.Start(); err != nil {
		return nil, fmt.Errorf("starting QEMU: %w", err)
	}
	go func() {
		buf := make([]byte, 4096)
		for {
			n, err := out.Read(buf)
			if n > 0 {
				if cfg.Console != nil {
					cfg.Console.Write(buf[:n]) //nolint:errcheck
				}
				m.mu.Lock()
				m.console.Write(buf[:n])
				m.cond.Broadcast()
				m.mu.Unlock()
			}
			if err != nil {
				break
			}
		}
		err := m.cmd.Wait()
		if s := stderr.String(); s != "" && err != nil {
			err = fmt.Errorf("%w; QEMU said: %s", err, s)
		}
		m.mu.Lock()
		m.exit = err
		m.mu.Unlock()
		close(m.exited)
		m.mu.Lock()
		m.cond.Broadcast()
		m.mu.Unlock()
	}()
	return m, nil
}

// ramMiB is the guest's memory in args (-m N or NM).
func ramMiB(args []string) (int, error) {
	for i, a := range args[:max(len(args)-1, 0)] {
		if a == "-m" {
			return strconv.Atoi(strings.TrimSuffix(args[i+1], "M"))
		}
	}
	return 0, errors.New("boot: the QEMU arguments set no memory size (-m)")
}

// DeviceArgs are QEMU's arguments for nic (one of NICs) on netdev n0.
func DeviceArgs(nic string) ([]string, error) {
	mac := ",mac=" + GuestMAC
	switch nic {
	case "", "virtio-mmio":
		return []string{"-global", "virtio-mmio.force-legacy=false", "-device", "virtio-net-device,netdev=n0" + mac}, nil
	case "virtio-mmio-legacy":
		return []string{"-device", "virtio-net-device,netdev=n0" + mac}, nil
	case "virtio-pci":
		return []string{"-device", "virtio-net-pci,netdev=n0,disable-legacy=on,romfile=" + mac}, nil
	case "e1000":
		return []string{"-device", "e1000,netdev=n0,romfile=" + mac}, nil
	}
	return nil, fmt.Errorf("unknown NIC %q; choose one of %s", nic, strings.Join(NICs, ", "))
}

// Expect waits until the console output matches re and returns the match
// (with submatches), or fails after timeout or when QEMU exits.
func (m *Machine) Expect(re string, timeout time.Duration) ([]string, error) {
	rx, err := regexp.Compile(re)
	if err != nil {
		return nil, err
	}
	var match [][]byte
	exited := false
	m.mu.Lock()
	defer m.mu.Unlock()
	found := m.await(timeout, func() bool {
		if match = rx.FindSubmatch(m.console.Bytes()); match != nil {
			return true
		}
		select {
		case <-m.exited:
			exited = true
		default:
		}
		return exited
	})
	switch {
	case match != nil:
		s := make([]string, len(match))
		for i, b := range match {
			s[i] = string(b)
		}
		return s, nil
	case found && exited:
		return nil, fmt.Errorf("QEMU exited (%v) before the console showed %q", m.exit, re)
	}
	return nil, fmt.Errorf("console did not show %q within %v", re, timeout)
}

// await waits, with m.mu held, until done (called with it held) reports
// true or timeout passes, and reports which.
func (m *Machine) await(timeout time.Duration, done func() bool) bool {
	deadline := time.Now().Add(timeout)
	t := time.AfterFunc(timeout, func() { m.mu.Lock(); m.cond.Broadcast(); m.mu.Unlock() })
	defer t.Stop()
	for !done() {
		if time.Now().After(deadline) {
			return false
		}
		m.cond.Wait()
	}
	return true
}

// Console is everything the guest printed so far.
func (m *Machine) Console() string {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.console.String()
}

// Send types a line on the serial console.
func (m *Machine) Send(line string) error {
	_, err := io.WriteString(m.stdin, line+"\r")
	return err
}

// WaitLog waits for a netdumpd log line containing s.
func (m *Machine) WaitLog(s string, timeout time.Duration) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	seen := 0 // lines already looked at
	if m.await(timeout, func() bool {
		for ; seen < len(m.logs); seen++ {
			if strings.Contains(m.logs[seen], s) {
				return true
			}
		}
		return false
	}) {
		return nil
	}
	return fmt.Errorf("netdumpd did not log %q within %v (log: %q)", s, timeout, m.logs)
}

// Wait waits for QEMU to exit and returns its exit status.
func (m *Machine) Wait(timeout time.Duration) (int, error) {
	select {
	case <-m.exited:
	case <-time.After(timeout):
		return -1, fmt.Errorf("QEMU still running after %v", timeout)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	var ee *exec.ExitError
	if errors.As(m.exit, &ee) {
		return ee.ExitCode(), nil
	}
	return 0, m.exit
}

// Stack is the server's network host (for sending traffic to the guest).
func (m *Machine) Stack() *usernet.Stack { return m.stack }

// Close stops QEMU and the server and removes the sockets.
func (m *Machine) Close() {
	if m.cmd != nil && m.cmd.Process != nil {
		m.cmd.Process.Kill() //nolint:errcheck // may have exited
		<-m.exited
	}
	if m.srv != nil {
		m.srv.Close()
		<-m.srvErr
	}
	if m.netL != nil {
		m.netL.Close()
	}
	m.mu.Lock()
	if m.vhost != nil {
		m.vhost.Close()
	}
	if m.netConn != nil {
		m.netConn.Close()
	}
	if m.relay != nil {
		m.relay.Close()
	}
	m.mu.Unlock()
	if m.stack != nil {
		m.stack.Close()
	}
	os.RemoveAll(m.tmp)
}

// tail keeps the end of QEMU's stderr for error messages.
type tail struct {
	mu sync.Mutex
	b  []byte
}

func (t *tail) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.b = append(t.b, p...)
	if len(t.b) > 4096 {
		t.b = t.b[len(t.b)-4096:]
	}
	return len(p), nil
}

func (t *tail) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return strings.TrimSpace(string(t.b))
}
