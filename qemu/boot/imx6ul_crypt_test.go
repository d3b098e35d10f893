package boot

import (
	"bytes"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tamadump/tamadump/netdump/crashinfo"
	"github.com/tamadump/tamadump/netdump/server"
	"gvisor.dev/gvisor/pkg/tcpip/network/ipv6"
	"gvisor.dev/gvisor/pkg/tcpip/transport/udp"
)

// Encrypted and IPv6 dumps on the i.MX6UL board.
//
// IPv6 on this board: QEMU's imx.enet applies no destination filter (it
// ignores the hash registers and RCR.PROM), so every frame on the link,
// multicast included, reaches the ring; drivers/imxenet's own filter
// takes unicast to the board and every group address, as the hardware
// does with the hash drivers/imxenet programs. The IPv6 dump checks it:
// netdumpd's host forgets the guest mid-dump and must solicit it
// (solicitGuestMidDump). The board's normal-operation network (imx-enet)
// is IPv4-only: an IPv6 image says "network: ... not an IPv4 prefix" at
// boot and dumps over IPv6 after the crash all the same.

// hostTools are the host commands these tests run, built once.
var hostTools struct {
	once sync.Once
	dir  string
	err  error
}

// hostTool is the path of cmd/<name> built for the host.
func hostTool(t *testing.T, name string) string {
	t.Helper()
	hostTools.once.Do(func() {
		if hostTools.dir, hostTools.err = os.MkdirTemp("", "tamadump-tools-"); hostTools.err != nil {
			return
		}
		cmd := exec.Command("go", "build", "-o", hostTools.dir, "./cmd/decryptcore", "./cmd/netdumpd")
		cmd.Dir = ModuleRoot()
		if out, err := cmd.CombinedOutput(); err != nil {
			hostTools.err = fmt.Errorf("building the host commands: %v\n%s", err, out)
		}
	})
	if hostTools.err != nil {
		t.Fatal(hostTools.err)
	}
	return filepath.Join(hostTools.dir, name)
}

// TestIMX6ULEncryptedIPv6: the i.MX6UL image with a public key compiled
// in (dumpon -k at boot) dumps encrypted, with AES-256-CBC over IPv4 and
// with ChaCha20 over IPv6, and so does the plain image after dumpon -k
// in its shell (ChaCha20, IPv4); netdumpd keeps vmcore_encrypted and key, with
// no plaintext and no zero page in the encrypted core (elision is off
// without -E); netdumpd -private-key (crashinfo.Decrypter on its Ended
// hook) decrypts it, and cmd/decryptcore by hand to the same bytes, into
// the ARM core that passes imxCheckDump's byte-exact checks, that core.txt
// reports (header, panic, registers; Delve cannot read 32-bit ARM cores,
// which it says) and that gdb-multiarch unwinds; `netdumpd crashinfo -p`
// reports from the encrypted core directly; the info file shows the IPv6
// address, and the guest answers netdumpd's neighbour solicitation
// mid-dump.
func TestIMX6ULEncryptedIPv6(t *testing.T) {
	for _, tc := range []struct {
		cipher string
		ipv6   bool
		shell  bool // the key given by dumpon -k in the shell, not at build time
	}{
		{"aes256-cbc", false, false},
		{"chacha20", true, false},
		{"chacha20", false, true},
	} {
		name := tc.cipher
		if tc.ipv6 {
			name += "/ipv6"
		}
		if tc.shell {
			name += "/dumpon-k"
		}
		t.Run(name, func(t *testing.T) {
			priv, pub := dumpKey(t)
			keyPEM := filepath.Join(t.TempDir(), "private.pem")
			if err := os.WriteFile(keyPEM, pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(priv)}), 0o600); err != nil {
				t.Fatal(err)
			}
			decryptcore, netdumpd := hostTool(t, "decryptcore"), hostTool(t, "netdumpd")
			set := map[string]string{"pubkey": pub, "cipher": tc.cipher}
			host, from := GuestAddr.String(), "127.0.9.1 from 127.0.9.2"
			if tc.ipv6 {
				set["server"], set["client"] = ServerAddr6.Addr().String(), GuestAddr6.String()
				host, from = GuestAddr6.String(), set["server"]+" from "+set["client"]
			}
			var img *Image
			if tc.shell {
				img = imxImage(t)
			} else {
				img = imxVariant(t, set)
			}
			r := newReporter(t, img.Symbols, nil)
			dir := t.TempDir()
			// netdumpd -private-key: its Decrypter ahead of the report.
			decrypted := make(chan string, 1)
			dec := &crashinfo.Decrypter{Key: priv, Next: r.w.Ended, Log: func(_ server.Level, msg string) {
				if strings.HasPrefix(msg, "Decrypted ") || strings.HasPrefix(msg, "decryptcore: ") {
					decrypted <- msg
				}
			}}
			ready := `dumpon: netdump to ` + strings.ReplaceAll(from, ".", `\.`) + ` on ffec0, encrypted \(` + tc.cipher + `\)(?s:.*)READY`
			if tc.shell {
				ready = `READY`
			}
			m := startUntil(t, Config{QEMUArgs: img.QEMUArgs(0), DumpDir: dir, Ended: dec.Ended, IPv6: tc.ipv6}, ready, 2*time.Minute)
			if tc.shell {
				m.Send("dumpon -s 127.0.9.1 -c 127.0.9.2 -k " + pub + " -C " + tc.cipher + " ffec0")
				if _, err := m.Expect(`dumpon: kernel dumps on ffec0 to 127\.0\.9\.1[^\r\n]*\r\n`, 10*time.Second); err != nil {
					t.Fatal(err)
				}
			}
			m.Send("panic boom")
			var solicited chan [2]neighbourCounts
			if tc.ipv6 {
				solicited = solicitGuestMidDump(t, m, filepath.Join(dir, "vmcore_encrypted."+host+".0"))
			}
			if err := m.WaitLog("Completed dump", 2*time.Minute); err != nil {
				t.Fatal(err)
			}
			if tc.ipv6 {
				c := <-solicited
				if c[1].solicits <= c[0].solicits || c[1].adverts <= c[0].adverts {
					t.Fatalf("netdumpd's host solicited the guest mid-dump: %+v, then %+v: no solicitation sent or no advertisement heard", c[0], c[1])
				}
				t.Logf("mid-dump, netdumpd's host sent %d neighbour solicitations for the guest and heard %d advertisements",
					c[1].solicits-c[0].solicits, c[1].adverts-c[0].adverts)
			}
			var said string
			select {
			case said = <-decrypted:
			case <-time.After(time.Minute):
				t.Fatal("the dump was not decrypted")
			}
			if !strings.HasPrefix(said, "Decrypted ") {
				t.Fatal(said)
			}
			vmcore, d := imxCheckDumpFrom(t, img, m, dir, host, "boom")
			t.Logf("the image sent %d bytes (%d more declared zero) in %d ms; netdumpd: %s", d.bytes-d.zero, d.zero, d.ms, said)

			info, _ := os.ReadFile(filepath.Join(dir, "info."+host+".0"))
			if !strings.Contains(string(info), "Dump from "+host+" ["+host+"]") {
				t.Errorf("info does not name %s:\n%s", host, info)
			}
			encPath := filepath.Join(dir, "vmcore_encrypted."+host+".0")
			enc, err := os.ReadFile(encPath)
			if err != nil {
				t.Fatal(err)
			}
			plain, _ := os.ReadFile(vmcore)
			// decryptcore, by hand, makes the same core.
			byHand := filepath.Join(t.TempDir(), "vmcore")
			if out, err := exec.Command(decryptcore, "-v", "-p", keyPEM, "-k", filepath.Join(dir, "key."+host+".0"), "-e", encPath, "-c", byHand).CombinedOutput(); err != nil {
				t.Fatalf("decryptcore: %v\n%s", err, out)
			} else {
				t.Logf("%s", bytes.TrimSpace(out))
			}
			if again, _ := os.ReadFile(byHand); !bytes.Equal(again, plain) {
				t.Fatalf("decryptcore's core (%d bytes) differs from netdumpd's (%d bytes)", len(again), len(plain))
			}
			if len(enc) != len(plain) || len(enc) < 32<<20 {
				t.Fatalf("the encrypted core has %d bytes, the decrypted one %d", len(enc), len(plain))
			}
			if bytes.Contains(enc, []byte("TAMADUMP-PATTERN-TAMADUMP")) {
				t.Error("the pattern is readable in the encrypted vmcore")
			}
			zero, zeros := make([]byte, 4096), 0
			for off := 0; off+4096 <= len(plain); off += 4096 {
				if bytes.Equal(plain[off:off+4096], zero) {
					zeros++
					if bytes.Equal(enc[off:off+4096], zero) {
						t.Fatalf("a zero page at %#x in the encrypted vmcore: elision is on without -E", off)
					}
				}
			}
			if zeros == 0 { // the control: the plain core has zero pages to hide
				t.Fatal("the decrypted core has no zero page")
			}

			imxCheckPanicCore(t, img, r.report(t), vmcore)

			out, err := exec.Command(netdumpd, "crashinfo", "-symbols", img.Symbols, "-p", keyPEM, encPath).CombinedOutput()
			if err != nil {
				t.Fatalf("netdumpd crashinfo -p: %v\n%s", err, out)
			}
			for _, want := range []string{"decrypted for this report with " + keyPEM, "panic: boom\n", "(NT_PRSTATUS, EM_ARM)", "this core is EM_ARM (ELFCLASS32)"} {
				if !strings.Contains(string(out), want) {
					t.Errorf("netdumpd crashinfo -p's report lacks %q:\n%s", want, out)
				}
			}
		})
	}
}

// neighbourCounts are the ICMPv6 neighbour discovery messages netdumpd's
// host has sent and received.
type neighbourCounts struct{ solicits, adverts uint64 }

func neighbourStats(m *Machine) neighbourCounts {
	v6 := m.Stack().Stack.Stack().Stats().ICMP.V6
	return neighbourCounts{v6.PacketsSent.NeighborSolicit.Value(), v6.PacketsReceived.NeighborAdvert.Value()}
}

// solicitGuestMidDump makes netdumpd's host solicit the guest while the
// guest dumps (core has 4 MiB): it forgets the guest's link address and
// sends it a datagram from a new socket. Until then netdumpd never needs
// to solicit the guest (the guest solicits netdumpd first, and that
// solicitation carries the guest's link address); from then on the
// datagram and netdumpd's own ACKs wait for a neighbour solicitation to
// the guest's solicited-node multicast group and the guest's
// advertisement, so the dump completes only if the guest's NIC takes
// multicast. It sends the counts from before the solicitation and, once
// an advertisement came (or 10 s passed), after it.
func solicitGuestMidDump(t *testing.T, m *Machine, core string) chan [2]neighbourCounts {
	done := make(chan [2]neighbourCounts, 1)
	go func() {
		for deadline := time.Now().Add(2 * time.Minute); time.Now().Before(deadline); time.Sleep(2 * time.Millisecond) {
			if st, err := os.Stat(core); err != nil || st.Size() < 4<<20 {
				continue
			}
			before := neighbourStats(m)
			st := m.Stack().Stack.Stack()
			for id := range st.NICInfo() {
				if err := st.ClearNeighbors(id, ipv6.ProtocolNumber); err != nil {
					t.Errorf("clearing the neighbour cache: %v", err)
				}
			}
			c, _, err := m.Stack().DialFrom(udp.ProtocolNumber, ServerAddr6.Addr(), 40009, netip.AddrPortFrom(GuestAddr6, 9))
			if err != nil {
				t.Error(err)
				done <- [2]neighbourCounts{before, before}
				return
			}
			defer c.Close()
			c.Write([]byte("who has fd00:9::2?")) //nolint:errcheck // only the resolution before it matters
			after := neighbourStats(m)
			for end := time.Now().Add(10 * time.Second); after.adverts == before.adverts && time.Now().Before(end); after = neighbourStats(m) {
				time.Sleep(time.Millisecond)
			}
			done <- [2]neighbourCounts{before, after}
			return
		}
		t.Error("the dump did not start")
		done <- [2]neighbourCounts{}
	}()
	return done
}
