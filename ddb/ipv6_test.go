package ddb

import (
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"net/netip"
	"strings"
	"testing"

	"github.com/tamadump/tamadump/netdump/ekcd"
)

// parseIPv6 agrees with netip.ParseAddr on what both read (addresses
// without a zone or a dotted tail, which the console does not take).
func TestParseIPv6(t *testing.T) {
	for _, s := range []string{
		"::", "::1", "1::", "fd00::2", "fe80::1", "2001:db8::8:800:200c:417a", "1:2:3:4:5:6:7:8", "1:2:3:4:5:6::8",
		"1::3:4:5:6:7:8", "FD00:0:0:0:0:0:0:1", "0:0:0:0:0:0:0:0", "ff02::1:ff00:1",
		// Bad.
		"", ":", ":::", "1:::2", "1::2::3", "12345::", "1:2:3:4:5:6:7:8:9", "1:2:3:4:5:6:7", "1:2:3:4:5:6:7::8",
		"::1:", ":1::", "g::1", "fe80::1%eth0", "::ffff:10.0.2.15", "1:2:3:4:5:6:7:8::",
	} {
		got, ok := parseIPv6([]byte(s))
		want, err := netip.ParseAddr(s)
		wantOK := err == nil && want.Is6() && want.Zone() == "" && !strings.Contains(s, ".")
		if ok != wantOK || ok && got != want {
			t.Errorf("parseIPv6(%q) = %v, %v; netip: %v, %v", s, got, ok, want, err)
		}
	}
}

func FuzzParseIPv6(f *testing.F) {
	for _, s := range []string{"::", "fd00::2", "1:2:3:4:5:6:7:8", "1::2::3", "fe80::1%x"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		got, ok := parseIPv6([]byte(s))
		want, err := netip.ParseAddr(s)
		if ok && (err != nil || got != want) {
			t.Fatalf("parseIPv6(%q) = %v; netip: %v, %v", s, got, want, err)
		}
		if !ok && err == nil && want.Is6() && want.Zone() == "" && !strings.Contains(s, ".") {
			t.Fatalf("parseIPv6(%q) refused what netip reads as %v", s, want)
		}
	})
}

// Parsing an address, good or bad, at the db> prompt does not allocate;
// netip.ParseAddr on a bad one does (the control).
func TestParseIPv6NoAlloc(t *testing.T) {
	good, bad := []byte("fd00:25::2"), []byte("fd00:::2")
	if n := testing.AllocsPerRun(100, func() { parseAddr(good); parseAddr(bad) }); n != 0 {
		t.Errorf("parseAddr allocated %v times", n)
	}
	if n := testing.AllocsPerRun(100, func() { netip.ParseAddr(string(bad)) }); n == 0 {
		t.Error("control: netip.ParseAddr's error went unseen")
	}
}

func TestDumponIPv6(t *testing.T) {
	v6 := cfg("vtnet0", "fd00:25::2", "fd00:25::1", "fe80::1", "")
	runCommandCases(t, false, []commandCase{
		{line: "dumpon -s fd00:25::1 -c fd00:25::2 -g fe80::1 vtnet0", want: "dumpon: kernel dumps on vtnet0 to fd00:25::1\n", after: v6},
		{line: "dumpon -s fd00:25::1 -c fd00:25::2 -g 10.0.2.1 vtnet0", want: "dumpon: gateway 10.0.2.1 is not of the client address's family\n"},
	})
	runCommandCases(t, true, []commandCase{
		{line: "netdump -s fd00:25::9", before: v6, want: "netdump finished.\n", dumps: 1, after: cfg("vtnet0", "fd00:25::2", "fd00:25::9", "fe80::1", "")},
	})
}

// dumpon -k takes the public key as PEM or its base64 body (one console
// line), makes the key material at once, and show says so.
func TestDumponKey(t *testing.T) {
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	der, _ := x509.MarshalPKIXPublicKey(&k.PublicKey)
	b64 := base64.StdEncoding.EncodeToString(der)
	if len("dumpon -s 10.0.2.2 -c 10.0.2.15 -k "+b64+" vtnet0") > MaxLine {
		t.Fatal("a 2048-bit key does not fit a console line")
	}
	for _, tc := range []struct {
		line, want string
		alg        ekcd.Algorithm
		elide      bool
	}{
		{"dumpon -s 10.0.2.2 -c 10.0.2.15 -k " + b64 + " vtnet0", "dumpon: kernel dumps on vtnet0 to 10.0.2.2, encrypted (aes256-cbc)\n", ekcd.AES256CBC, false},
		{"dumpon -s 10.0.2.2 -c 10.0.2.15 -k " + b64 + " -C chacha20 -E vtnet0", "dumpon: kernel dumps on vtnet0 to 10.0.2.2, encrypted (chacha20)\n", ekcd.ChaCha20, true},
	} {
		m := &fakeMachine{nics: twoNICs}
		if got := lf(t, exec(m, false, tc.line)); got != tc.want {
			t.Fatalf("got %q, want %q", got, tc.want)
		}
		if m.cfg.Encrypt == nil || m.cfg.Encrypt.Algorithm() != tc.alg || m.cfg.ElideEncrypted != tc.elide {
			t.Fatalf("configured %+v", m.cfg)
		}
		if got := lf(t, exec(m, false, "show dumpon")); !strings.Contains(got, "encrypted "+tc.alg.String()) {
			t.Errorf("show:\n%s", got)
		}
		d, err := ekcd.NewDecryptor(k, m.cfg.Encrypt.KeyBlob())
		if err != nil || d.Algorithm() != tc.alg {
			t.Fatalf("the key blob does not open with the private key: %v", err)
		}
	}
	pemKey := pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})
	if _, err := NewEncryptor(pemKey, "", rand.Reader); err != nil {
		t.Errorf("PEM key: %v", err)
	}
	m := &fakeMachine{nics: twoNICs}
	if got := lf(t, exec(m, false, "dumpon -s 10.0.2.2 -c 10.0.2.15 -C chacha20 vtnet0")); !strings.Contains(got, "-C and -E need -k pubkey") || m.on {
		t.Errorf("-C without -k: %q", got)
	}
}
