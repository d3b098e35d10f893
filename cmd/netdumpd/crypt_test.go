package main

import (
	"bytes"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tamadump/tamadump/netdump/buildid"
	"github.com/tamadump/tamadump/netdump/ekcd"
	"github.com/tamadump/tamadump/netdump/server/servertest"
	"github.com/tamadump/tamadump/netdump/symbols"
	"github.com/tamadump/tamadump/netdump/wire"
)

// v4Client is this track's IPv4 client address; the IPv6 one is ::1.
var v4Client = netip.MustParseAddr("127.0.25.2")

// netdumpdProc is a netdumpd -D started with args, its output collected.
type netdumpdProc struct {
	out  *syncBuf
	port int
	cmd  *exec.Cmd
}

// runNetdumpd starts netdumpd on a free HERALD port (free for IPv4 and
// IPv6) with ackPort and args, and waits until it listens.
func runNetdumpd(t *testing.T, ackPort int, args ...string) *netdumpdProc {
	t.Helper()
	probe, err := net.ListenUDP("udp", &net.UDPAddr{})
	if err != nil {
		t.Fatal(err)
	}
	p := &netdumpdProc{out: &syncBuf{}, port: probe.LocalAddr().(*net.UDPAddr).Port}
	probe.Close()
	args = append([]string{"-D", "-n", "-P", filepath.Join(t.TempDir(), "pid"),
		"-port", fmt.Sprint(p.port), "-ackport", fmt.Sprint(ackPort)}, args...)
	p.cmd = exec.Command(binary, args...)
	p.cmd.Stdout, p.cmd.Stderr = p.out, p.out
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.cmd.Process.Kill(); p.cmd.Wait() })
	p.wait(t, "Waiting for clients.")
	return p
}

func (p *netdumpdProc) wait(t *testing.T, want string) {
	t.Helper()
	for deadline := time.Now().Add(20 * time.Second); !strings.Contains(p.out.String(), want); time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("netdumpd never said %q:\n%s", want, p.out.String())
		}
	}
}

// ackPortFor is a port free on both client addresses.
func ackPortFor(t *testing.T) int {
	for range 20 {
		c6, err := net.ListenUDP("udp6", &net.UDPAddr{IP: net.IPv6loopback})
		if err != nil {
			t.Fatal(err)
		}
		port := c6.LocalAddr().(*net.UDPAddr).Port
		c4, err := net.ListenUDP("udp4", &net.UDPAddr{IP: v4Client.AsSlice(), Port: port})
		c6.Close()
		if err == nil {
			c4.Close()
			return port
		}
	}
	t.Fatal("no port free on both client addresses")
	return 0
}

// dumpFrom sends one dump from client:ackPort to server:port.
func dumpFrom(t *testing.T, client netip.Addr, ackPort int, server netip.AddrPort, key, core []byte) {
	t.Helper()
	network := "udp4"
	if client.Is6() {
		network = "udp6"
	}
	conn, err := net.ListenUDP(network, net.UDPAddrFromAddrPort(netip.AddrPortFrom(client, uint16(ackPort))))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	c := servertest.New(servertest.UDP(conn), server)
	if err := c.Herald(""); err != nil {
		t.Fatalf("HERALD from %v: %v", client, err)
	}
	var msgs []servertest.Msg
	for off := 0; off < len(key); off += 1024 {
		msgs = append(msgs, servertest.Msg{Type: wire.EKCDKey, Offset: uint64(off), Payload: key[off:min(off+1024, len(key))]})
	}
	for off := 0; off < len(core); off += 1024 {
		msgs = append(msgs, servertest.Msg{Type: wire.VMCore, Offset: uint64(off), Payload: core[off:min(off+1024, len(core))]})
	}
	k := wire.KernelDumpHeader{Version: wire.KDHVersion, ArchitectureVersion: 2, BlockSize: 4096,
		DumpLength: uint64(len(core)), DumpKeySize: uint32(len(key))}
	wire.SetText(k.Magic[:], wire.KDHMagic)
	wire.SetText(k.Architecture[:], "amd64")
	wire.SetText(k.Hostname[:], "testbox")
	wire.SetText(k.PanicString[:], "boom")
	var kdh [wire.KDHSize]byte
	k.Put(kdh[:])
	msgs = append(msgs, servertest.Msg{Type: wire.KDH, Payload: kdh[:]})
	if err := c.Send(msgs...); err != nil {
		t.Fatal(err)
	}
	if err := c.Finish(); err != nil {
		t.Fatal(err)
	}
}

func waitFile(t *testing.T, path, want string) string {
	t.Helper()
	for deadline := time.Now().Add(time.Minute); ; time.Sleep(20 * time.Millisecond) {
		b, _ := os.ReadFile(path)
		if strings.Contains(string(b), want) {
			return string(b)
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s never said %q:\n%s", path, want, b)
		}
	}
}

// Without -a netdumpd listens on both families: an IPv4 and an IPv6
// client each dump, and each info file shows its address.
func TestDualStack(t *testing.T) {
	dumps := t.TempDir()
	ack := ackPortFor(t)
	p := runNetdumpd(t, ack, "-d", dumps)
	core := imageCore(t, nil)
	dumpFrom(t, v4Client, ack, netip.AddrPortFrom(netip.MustParseAddr("127.0.25.1"), uint16(p.port)), nil, core)
	dumpFrom(t, netip.IPv6Loopback(), ack, netip.AddrPortFrom(netip.IPv6Loopback(), uint16(p.port)), nil, core)
	for _, c := range []string{"127.0.25.2", "::1"} {
		info := waitFile(t, filepath.Join(dumps, "info."+c+".0"), "Dump complete")
		if !strings.Contains(info, "Dump from "+c+" ["+c+"]") {
			t.Errorf("info of %s:\n%s", c, info)
		}
		if got, _ := os.ReadFile(filepath.Join(dumps, "vmcore."+c+".0")); !bytes.Equal(got, core) {
			t.Errorf("vmcore of %s differs", c)
		}
	}
}

// -a with an IPv6 address listens there only.
func TestListenIPv6Only(t *testing.T) {
	dumps := t.TempDir()
	ack := ackPortFor(t)
	p := runNetdumpd(t, ack, "-d", dumps, "-a", "::1")
	p.wait(t, "listening on IP ::1")
	conn, err := net.ListenUDP("udp4", &net.UDPAddr{IP: v4Client.AsSlice(), Port: ack})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	c := servertest.New(servertest.UDP(conn), netip.AddrPortFrom(netip.MustParseAddr("127.0.25.1"), uint16(p.port)))
	c.Retries = 2
	if c.Herald("") == nil {
		t.Fatal("netdumpd -a ::1 answered a HERALD sent to 127.0.25.1")
	}
	dumpFrom(t, netip.IPv6Loopback(), ack, netip.AddrPortFrom(netip.IPv6Loopback(), uint16(p.port)), nil, imageCore(t, nil))
	waitFile(t, filepath.Join(dumps, "info.::1.0"), "Dump complete")
}

func writePrivateKey(t *testing.T, path string) *rsa.PrivateKey {
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(k)}), 0o600)
	return k
}

// netdumpd -private-key decrypts a complete encrypted dump beside itself
// and reports from the plain core; with another private key it logs why
// not and reports the encrypted core as such, which stays as it came.
func TestPrivateKeyDecrypts(t *testing.T) {
	syms := t.TempDir()
	if _, err := symbols.Store(syms, binary); err != nil {
		t.Fatal(err)
	}
	id, _ := buildid.File(binary)
	plain := imageCore(t, id)
	plain = append(plain, make([]byte, (16-len(plain)%16)%16)...)
	keyPath, otherPath := filepath.Join(t.TempDir(), "priv.pem"), filepath.Join(t.TempDir(), "other.pem")
	k := writePrivateKey(t, keyPath)
	writePrivateKey(t, otherPath)
	for _, tc := range []struct {
		name, key string
		ok        bool
	}{{"right key", keyPath, true}, {"wrong key", otherPath, false}} {
		t.Run(tc.name, func(t *testing.T) {
			e, err := ekcd.NewEncryptor(&k.PublicKey, ekcd.AES256CBC, rand.Reader)
			if err != nil {
				t.Fatal(err)
			}
			e.Start(int64(len(plain)))
			enc := make([]byte, len(plain))
			e.Next(enc, plain)
			dumps := t.TempDir()
			ack := ackPortFor(t)
			p := runNetdumpd(t, ack, "-d", dumps, "-a", "::1", "-symbols", syms, "-private-key", tc.key)
			dumpFrom(t, netip.IPv6Loopback(), ack, netip.AddrPortFrom(netip.IPv6Loopback(), uint16(p.port)), e.KeyBlob(), enc)
			report := waitFile(t, filepath.Join(dumps, "core.txt.::1.0"), "panic: boom")
			got, err := os.ReadFile(filepath.Join(dumps, "vmcore.::1.0"))
			if tc.ok {
				if err != nil || !bytes.Equal(got, plain) {
					t.Fatalf("decrypted core: %v\n%s", err, p.out.String())
				}
				p.wait(t, "Decrypted "+filepath.Join(dumps, "vmcore_encrypted.::1.0")+" into vmcore.::1.0")
				for _, want := range []string{"dumped core - see " + filepath.Join(dumps, "vmcore.::1.0"), "rip      0x0000000000401234"} {
					if !strings.Contains(report, want) {
						t.Errorf("core.txt lacks %q:\n%s", want, report)
					}
				}
			} else {
				if err == nil {
					t.Fatal("a core was decrypted with the wrong key")
				}
				p.wait(t, "not made for this private key")
				if !strings.Contains(report, "the core is encrypted") {
					t.Errorf("core.txt:\n%s", report)
				}
			}
			if got, _ := os.ReadFile(filepath.Join(dumps, "vmcore_encrypted.::1.0")); !bytes.Equal(got, enc) {
				t.Fatal("the encrypted core changed")
			}
		})
	}
}

func TestPrivateKeyUnreadable(t *testing.T) {
	out, err := exec.Command(binary, "-D", "-d", t.TempDir(), "-P", filepath.Join(t.TempDir(), "pid"),
		"-private-key", filepath.Join(t.TempDir(), "missing.pem")).CombinedOutput()
	if err == nil || !strings.Contains(string(out), "-private-key") {
		t.Fatalf("%v: %s", err, out)
	}
}
