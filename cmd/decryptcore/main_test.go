package main

import (
	"bytes"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tamadump/tamadump/netdump/ekcd"
)

type dump struct {
	dir, priv, other, key, enc string
	plain, cipher              []byte
}

// makeDump writes what netdumpd saves of an encrypted dump from host h,
// number 0, and a second dump's key file (number 1).
func makeDump(t *testing.T) dump {
	t.Helper()
	dir := t.TempDir()
	d := dump{dir: dir, priv: filepath.Join(dir, "priv.pem"), other: filepath.Join(dir, "other.pem"),
		key: filepath.Join(dir, "key.h.0"), enc: filepath.Join(dir, "vmcore_encrypted.h.0")}
	writeKey := func(path string) *rsa.PrivateKey {
		k, err := rsa.GenerateKey(rand.Reader, 2048)
		if err != nil {
			t.Fatal(err)
		}
		b := pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(k)})
		if err := os.WriteFile(path, b, 0o600); err != nil {
			t.Fatal(err)
		}
		return k
	}
	k := writeKey(d.priv)
	writeKey(d.other)
	e, err := ekcd.NewEncryptor(&k.PublicKey, ekcd.AES256CBC, rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	d.plain = make([]byte, 8192)
	rand.Read(d.plain)
	copy(d.plain, "\x7fELF")
	for i := 0; i < 2; i++ {
		if err := e.Start(int64(len(d.plain))); err != nil {
			t.Fatal(err)
		}
		c := make([]byte, len(d.plain))
		if err := e.Next(c, d.plain); err != nil {
			t.Fatal(err)
		}
		name := filepath.Join(dir, "key.h."+string(rune('0'+i)))
		if err := os.WriteFile(name, e.KeyBlob(), 0o400); err != nil {
			t.Fatal(err)
		}
		if i == 0 {
			d.cipher = c
		}
	}
	if err := os.WriteFile(d.enc, d.cipher, 0o600); err != nil {
		t.Fatal(err)
	}
	return d
}

func TestDecryptByNumber(t *testing.T) {
	d := makeDump(t)
	var errb bytes.Buffer
	if rc := run([]string{"-v", "-d", d.dir, "-p", d.priv, "-n", "h.0"}, &errb); rc != 0 {
		t.Fatalf("exit %d: %s", rc, errb.String())
	}
	got, err := os.ReadFile(filepath.Join(d.dir, "vmcore.h.0"))
	if err != nil || !bytes.Equal(got, d.plain) {
		t.Fatalf("decrypted core differs (%v)", err)
	}
	// It exists now: again only with -f.
	if rc := run([]string{"-d", d.dir, "-p", d.priv, "-n", "h.0"}, &errb); rc == 0 {
		t.Fatal("an existing core was overwritten without -f")
	}
	if rc := run([]string{"-f", "-d", d.dir, "-p", d.priv, "-n", "h.0"}, &errb); rc != 0 {
		t.Fatalf("-f: %s", errb.String())
	}
}

func TestBadInputLeavesCoreUntouched(t *testing.T) {
	d := makeDump(t)
	trunc := filepath.Join(d.dir, "key.trunc")
	blob, _ := os.ReadFile(d.key)
	os.WriteFile(trunc, blob[:200], 0o600)
	for _, tc := range []struct {
		name, priv, key, want string
	}{
		{"wrong private key", d.other, d.key, "not made for this private key"},
		{"truncated key file", d.priv, trunc, "truncated"},
		{"key file of another dump", d.priv, filepath.Join(d.dir, "key.h.1"), "another dump"},
	} {
		out := filepath.Join(d.dir, "vmcore.out")
		var errb bytes.Buffer
		rc := run([]string{"-p", tc.priv, "-k", tc.key, "-e", d.enc, "-c", out}, &errb)
		if rc == 0 || !strings.Contains(errb.String(), tc.want) {
			t.Errorf("%s: exit %d, %q; want an error saying %q", tc.name, rc, errb.String(), tc.want)
		}
		if _, err := os.Stat(out); !os.IsNotExist(err) {
			t.Errorf("%s: a partial core was left behind", tc.name)
		}
		if got, _ := os.ReadFile(d.enc); !bytes.Equal(got, d.cipher) {
			t.Fatalf("%s: the encrypted core changed", tc.name)
		}
	}
}

func TestUsage(t *testing.T) {
	for _, args := range [][]string{
		{},
		{"-p", "x", "-n", "../0"},
		{"-p", "x", "-n", "h.x"},
		{"-p", "x", "-n", "0", "-k", "key"},
		{"-p", "x", "-k", "k", "-e", "e"},
	} {
		var errb bytes.Buffer
		if rc := run(args, &errb); rc != 1 || !strings.Contains(errb.String(), "usage") {
			t.Errorf("%q: exit %d, %q", args, rc, errb.String())
		}
	}
}
