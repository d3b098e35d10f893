package crashinfo

import (
	"bytes"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"os"
	"path/filepath"
	"testing"

	"github.com/tamadump/tamadump/netdump/ekcd"
)

// With -p (and the key file beside it) an encrypted core is read as the
// plain one would be; the encrypted file is not changed and nothing is
// left beside it; a wrong private key is an error line in the report.
func TestEncryptedWithKey(t *testing.T) {
	f := newFixture(t, nil, "vmcore_encrypted."+host+".0", info("tamadump test", "boom"))
	id := f.selfImage(t)
	plain := amd64Core(t, id, "boom")
	plain = append(plain, make([]byte, (16-len(plain)%16)%16)...)
	priv, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	privPath := filepath.Join(t.TempDir(), "priv.pem")
	os.WriteFile(privPath, pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(priv)}), 0o600)
	e, err := ekcd.NewEncryptor(&priv.PublicKey, ekcd.ChaCha20, rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	if err := e.Start(int64(len(plain))); err != nil {
		t.Fatal(err)
	}
	enc := make([]byte, len(plain))
	e.Next(enc, plain)
	os.WriteFile(f.core, enc, 0o600)
	os.WriteFile(filepath.Join(f.dir, "key."+host+".0"), e.KeyBlob(), 0o400)

	var out bytes.Buffer
	if err := Analyze(&out, Options{Core: f.core, Symbols: f.symbols, PrivateKey: privPath}); err != nil {
		t.Fatal(err)
	}
	r := out.String()
	has(t, r, "decrypted for this report with "+privPath, "panic: boom", "thread 1, signal 6", "rip      0x0000000000401234",
		"decryptcore -p "+privPath, "-c "+filepath.Join(f.dir, "vmcore."+host+".0"))
	if got, _ := os.ReadFile(f.core); !bytes.Equal(got, enc) {
		t.Fatal("the encrypted core changed")
	}
	if _, err := os.Stat(filepath.Join(f.dir, "vmcore."+host+".0")); !os.IsNotExist(err) {
		t.Fatal("the report left a decrypted core behind")
	}

	other, _ := rsa.GenerateKey(rand.Reader, 2048)
	os.WriteFile(privPath, pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(other)}), 0o600)
	out.Reset()
	Analyze(&out, Options{Core: f.core, Symbols: f.symbols, PrivateKey: privPath})
	has(t, out.String(), "error: "+f.core+": decrypting: ", "not made for this private key")
}
