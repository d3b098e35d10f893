package boot

import (
	"bytes"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tamadump/tamadump/netdump/crashinfo"
	"github.com/tamadump/tamadump/netdump/server"
)

var (
	rsaOnce sync.Once
	rsaKey  *rsa.PrivateKey
)

func dumpKey(t *testing.T) (*rsa.PrivateKey, string) {
	rsaOnce.Do(func() {
		var err error
		if rsaKey, err = rsa.GenerateKey(rand.Reader, 2048); err != nil {
			panic(err)
		}
	})
	der, err := x509.MarshalPKIXPublicKey(&rsaKey.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	return rsaKey, base64.StdEncoding.EncodeToString(der)
}

// TestEncryptedAndIPv6: the image dumps encrypted (dumpon -k, set on its
// command line or at build time) and over IPv6, on each board; netdumpd
// keeps the encrypted vmcore and its key, netdumpd -private-key decrypts
// them to a core whose report, Delve and gdb read; an IPv6
// dump's info file shows the IPv6 address; e1000 takes the solicited-node
// multicast that IPv6 needs.
func TestEncryptedAndIPv6(t *testing.T) {
	type tcase struct {
		board, nic string
		ipv6       bool
		cipher     string // "": not encrypted
	}
	cases := []tcase{
		{StockGo, "virtio-mmio", false, "aes256-cbc"},
		{StockGo, "virtio-pci", true, "chacha20"},
		{TamaGo, "virtio-mmio", false, "aes256-cbc"},
		{TamaGo, "virtio-pci", true, "chacha20"},
	}
	for _, board := range []string{StockGo, TamaGo} {
		for _, nic := range NICs {
			cases = append(cases, tcase{board, nic, true, ""})
		}
	}
	variants := map[string]*Image{} // TamaGo builds one per set of settings
	for _, tc := range cases {
		name := tc.board + "/" + tc.nic
		if tc.ipv6 {
			name += "/ipv6"
		}
		if tc.cipher != "" {
			name += "/" + tc.cipher
		}
		t.Run(name, func(t *testing.T) {
			img := image(t, tc.board)
			set := map[string]string{}
			host := GuestAddr.String()
			if tc.ipv6 {
				set["server"], set["client"] = ServerAddr6.Addr().String(), GuestAddr6.String()
				host = GuestAddr6.String()
			}
			priv, pub := dumpKey(t)
			if tc.cipher != "" {
				set["pubkey"], set["cipher"] = pub, tc.cipher
			}
			key := tc.board + "|" + set["server"] + "|" + set["cipher"]
			if v := variants[key]; v != nil {
				img = v
			} else {
				var err error
				if img, err = img.With(set); err != nil {
					t.Fatal(err)
				}
				variants[key] = img
			}
			r := newReporter(t, img.Symbols, nil)
			dir := t.TempDir()
			// netdumpd -private-key: its Decrypter ahead of the report.
			dec := &crashinfo.Decrypter{Key: priv, Next: r.w.Ended, Log: func(l server.Level, msg string) {
				if l == server.LevelError {
					t.Errorf("netdumpd: %s", msg)
				}
			}}
			m := startUntil(t, Config{QEMUArgs: img.QEMUArgs(0), NIC: tc.nic, DumpDir: dir, Ended: dec.Ended, IPv6: tc.ipv6}, `READY`, 60*time.Second)
			if tc.cipher != "" {
				if _, err := m.Expect(`encrypted \(`+tc.cipher+`\)`, time.Second); err != nil {
					t.Fatal(err)
				}
			}
			m.Send("panic boom")
			if err := m.WaitLog("Completed dump", 90*time.Second); err != nil {
				t.Fatal(err)
			}
			report := r.report(t) // after the decryption
			vmcore := checkDumpFrom(t, m, dir, host, "boom")
			info, _ := os.ReadFile(filepath.Join(dir, "info."+host+".0"))
			if !strings.Contains(string(info), "Dump from "+host+" ["+host+"]") {
				t.Errorf("info:\n%s", info)
			}
			if tc.cipher != "" {
				enc, err := os.ReadFile(filepath.Join(dir, "vmcore_encrypted."+host+".0"))
				if err != nil {
					t.Fatal(err)
				}
				if bytes.Contains(enc, []byte("TAMADUMP-PATTERN-TAMADUMP")) {
					t.Error("the pattern is readable in the encrypted vmcore")
				}
				zero := make([]byte, 4096)
				for off := 0; off+4096 <= len(enc); off += 4096 {
					if bytes.Equal(enc[off:off+4096], zero) {
						t.Fatalf("a zero page at %#x in the encrypted vmcore: elision is on without -E", off)
					}
				}
			}
			crash := regexp.MustCompile(`\nthe crash: goroutine (\d+) in (\S+) at `).FindStringSubmatch(report)
			count := regexp.MustCompile(`\n(\d+) goroutines \(read with Delve`).FindStringSubmatch(report)
			exe := regexp.MustCompile(`\n  dlv core (\S+) `).FindStringSubmatch(report)
			if crash == nil || crash[2] != "main.(*image).Panic" || count == nil || exe == nil {
				t.Fatalf("core.txt of the decrypted core:\n%s", report)
			}
			dlvSays(t, exe[1], vmcore, crash[1], crash[2], count[1])
			gdbCheck(t, img, vmcore)
		})
	}
}
