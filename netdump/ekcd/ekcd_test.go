package ekcd

import (
	"bytes"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"errors"
	mrand "math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"

	"github.com/tamadump/tamadump/netdump/wire"
)

var (
	keysOnce sync.Once
	keyA     *rsa.PrivateKey
	keyB     *rsa.PrivateKey // same size, another key
	keyC     *rsa.PrivateKey // another size
)

func keys(t testing.TB) (a, b, c *rsa.PrivateKey) {
	keysOnce.Do(func() {
		var err error
		for _, p := range []struct {
			k    **rsa.PrivateKey
			bits int
		}{{&keyA, 2048}, {&keyB, 2048}, {&keyC, 3072}} {
			if *p.k, err = rsa.GenerateKey(rand.Reader, p.bits); err != nil {
				panic(err)
			}
		}
	})
	return keyA, keyB, keyC
}

// plainCore is an ELF-looking core with zero pages in it.
func plainCore(size int) []byte {
	b := make([]byte, size)
	r := mrand.New(mrand.NewPCG(1, 2))
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	copy(b, "\x7fELF")
	clear(b[3*wire.DataSize : 6*wire.DataSize]) // an elided run
	return b
}

// encryptLikeClient encrypts core as the client sends it: 1440-byte
// messages in order, zero pages skipped when elide is set (left zero in the
// output, as a server's file has them), every message encrypted a second
// time from its saved position as a retransmission would be.
func encryptLikeClient(t *testing.T, e *Encryptor, core []byte, elide bool) []byte {
	t.Helper()
	if err := e.Start(int64(len(core))); err != nil {
		t.Fatal(err)
	}
	out := make([]byte, len(core))
	const msg = 1440
	for off := 0; off < len(core); {
		if elide && off%wire.DataSize == 0 && bytes.Equal(core[off:off+wire.DataSize], zeroPage[:]) {
			if err := e.Skip(wire.DataSize); err != nil {
				t.Fatal(err)
			}
			off += wire.DataSize
			continue
		}
		n := min(msg, len(core)-off, (off/wire.DataSize+1)*wire.DataSize-off)
		p := e.Pos()
		if p.Off != int64(off) {
			t.Fatalf("Pos %d, want %d", p.Off, off)
		}
		if err := e.Next(out[off:off+n], core[off:off+n]); err != nil {
			t.Fatal(err)
		}
		again := make([]byte, n)
		if err := e.At(again, core[off:off+n], p); err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(again, out[off:off+n]) {
			t.Fatalf("re-encryption at %d differs", off)
		}
		off += n
	}
	return out
}

func decrypt(t *testing.T, priv *rsa.PrivateKey, blob, enc []byte) ([]byte, error) {
	t.Helper()
	d, err := NewDecryptor(priv, blob)
	if err != nil {
		return nil, err
	}
	var out bytes.Buffer
	_, err = DecryptCore(&out, bytes.NewReader(enc), d)
	return out.Bytes(), err
}

func TestRoundTrip(t *testing.T) {
	a, _, _ := keys(t)
	for _, alg := range []Algorithm{AES256CBC, ChaCha20} {
		for _, elide := range []bool{false, true} {
			e, err := NewEncryptor(&a.PublicKey, alg, rand.Reader)
			if err != nil {
				t.Fatal(err)
			}
			core := plainCore(10 * wire.DataSize)
			enc := encryptLikeClient(t, e, core, elide)
			if bytes.Contains(enc, core[wire.DataSize:wire.DataSize+64]) {
				t.Fatalf("%v: plaintext visible in the ciphertext", alg)
			}
			if got := bytes.Equal(enc[3*wire.DataSize:6*wire.DataSize], make([]byte, 3*wire.DataSize)); got != elide {
				t.Fatalf("%v elide=%v: zero run sent as zeros: %v", alg, elide, got)
			}
			got, err := decrypt(t, a, e.KeyBlob(), enc)
			if err != nil {
				t.Fatalf("%v elide=%v: %v", alg, elide, err)
			}
			if !bytes.Equal(got, core) {
				t.Fatalf("%v elide=%v: decrypted core differs", alg, elide)
			}
		}
	}
}

// Each dump of one boot gets the SHA-256 of the previous IV, as FreeBSD's
// kerneldumpcrypto_init, and so another ciphertext.
func TestIVPerDump(t *testing.T) {
	a, _, _ := keys(t)
	e, err := NewEncryptor(&a.PublicKey, AES256CBC, rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	seed := e.iv
	core := plainCore(8 * wire.DataSize)
	first := encryptLikeClient(t, e, core, false)
	k1, err := wire.ParseKey(e.KeyBlob())
	if err != nil {
		t.Fatal(err)
	}
	if want := sha256.Sum256(seed[:]); k1.IV != want {
		t.Fatalf("first dump's IV %x, want SHA-256 of the seed %x", k1.IV, want)
	}
	blob1 := bytes.Clone(e.KeyBlob())
	second := encryptLikeClient(t, e, core, false)
	k2, _ := wire.ParseKey(e.KeyBlob())
	if want := sha256.Sum256(k1.IV[:]); k2.IV != want {
		t.Fatal("second dump's IV is not the SHA-256 of the first's")
	}
	if bytes.Equal(first[:64], second[:64]) {
		t.Fatal("two dumps encrypted alike")
	}
	// The first dump's key file does not open the second dump.
	if _, err := decrypt(t, a, blob1, second); !errors.Is(err, ErrNotThisDump) {
		t.Fatalf("key of another dump: %v", err)
	}
}

func TestBlobLayout(t *testing.T) {
	a, _, c := keys(t)
	for _, k := range []*rsa.PrivateKey{a, c} {
		e, err := NewEncryptor(&k.PublicKey, ChaCha20, rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		b := e.KeyBlob()
		if len(b) != wire.DataSize {
			t.Fatalf("blob %d bytes, want one 4096-byte block", len(b))
		}
		kk, err := wire.ParseKey(b)
		if err != nil || kk.Encryption != 2 || int(kk.EncryptedKeySize) != k.Size() {
			t.Fatalf("blob %+v %v", kk, err)
		}
	}
}

func TestBadInput(t *testing.T) {
	a, b, c := keys(t)
	e, err := NewEncryptor(&a.PublicKey, AES256CBC, rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	enc := encryptLikeClient(t, e, plainCore(8*wire.DataSize), false)
	blob := e.KeyBlob()
	for _, tc := range []struct {
		name string
		priv *rsa.PrivateKey
		blob []byte
		core []byte
		want error
	}{
		{"wrong private key", b, blob, enc, ErrWrongKey},
		{"private key of another size", c, blob, enc, ErrWrongKey},
		{"truncated key file", a, blob[:100], enc, ErrKeyTruncated},
		{"key file shorter than its header", a, blob[:20], enc, ErrKeyTruncated},
		{"unknown cipher", a, append([]byte{9}, blob[1:]...), enc, ErrKeyAlgorithm},
		{"truncated core", a, blob, enc[:len(enc)-5], ErrCoreTruncated},
	} {
		if _, err := decrypt(t, tc.priv, tc.blob, tc.core); !errors.Is(err, tc.want) {
			t.Errorf("%s: %v, want %v", tc.name, err, tc.want)
		}
	}
	// The control: the right inputs decrypt.
	if _, err := decrypt(t, a, blob, enc); err != nil {
		t.Fatal(err)
	}
}

// After Start, a dump's encryption does not allocate; the control shows the
// measurement sees the allocation the Decryptor makes per CBC piece.
func TestNoAllocs(t *testing.T) {
	a, _, _ := keys(t)
	src := plainCore(16 * wire.DataSize)
	dst := make([]byte, len(src))
	for _, alg := range []Algorithm{AES256CBC, ChaCha20} {
		e, err := NewEncryptor(&a.PublicKey, alg, rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		n := testing.AllocsPerRun(20, func() {
			if err := e.Start(int64(len(src))); err != nil {
				t.Fatal(err)
			}
			p := e.Pos()
			e.Next(dst[:1440], src[:1440])
			e.At(dst[:1440], src[:1440], p)
			e.Skip(2 * wire.DataSize)
			e.Next(dst[:4096], src[:4096])
		})
		if n != 0 {
			t.Errorf("%v: %v allocations per dump", alg, n)
		}
	}
	d, err := NewDecryptor(a, mustEncryptor(t, &a.PublicKey).KeyBlob())
	if err != nil {
		t.Fatal(err)
	}
	if n := testing.AllocsPerRun(20, func() { d.Decrypt(dst[:1440], src[:1440]) }); n == 0 {
		t.Fatal("control: the Decryptor's per-piece allocation went unseen")
	}
}

func mustEncryptor(t *testing.T, pub *rsa.PublicKey) *Encryptor {
	e, err := NewEncryptor(pub, AES256CBC, rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return e
}

// OpenSSL, with decryptcore's parameters, decrypts what the Encryptor
// makes: the key with OAEP, the core with aes-256-cbc (IV = kdk_iv[0:16])
// or chacha20 (IV = a zero 64-bit counter then kdk_iv[0:8]), no padding.
func TestOpenSSLDecrypts(t *testing.T) {
	if _, err := exec.LookPath("openssl"); err != nil {
		t.Skip("openssl not installed")
	}
	a, _, _ := keys(t)
	dir := t.TempDir()
	privPath := filepath.Join(dir, "priv.pem")
	pemKey := pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(a)})
	if err := os.WriteFile(privPath, pemKey, 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		alg  Algorithm
		ossl string
		iv   func([wire.KeyIVSize]byte) string
	}{
		{AES256CBC, "-aes-256-cbc", func(iv [32]byte) string { return hex.EncodeToString(iv[:16]) }},
		{ChaCha20, "-chacha20", func(iv [32]byte) string { return "0000000000000000" + hex.EncodeToString(iv[:8]) }},
	} {
		e, err := NewEncryptor(&a.PublicKey, tc.alg, rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		core := plainCore(8 * wire.DataSize)
		enc := encryptLikeClient(t, e, core, false)
		k, err := wire.ParseKey(e.KeyBlob())
		if err != nil {
			t.Fatal(err)
		}
		wrapped := filepath.Join(dir, "wrapped")
		os.WriteFile(wrapped, k.EncryptedKey, 0o600)
		key, err := exec.Command("openssl", "pkeyutl", "-decrypt", "-inkey", privPath, "-in", wrapped,
			"-pkeyopt", "rsa_padding_mode:oaep").Output()
		if err != nil || len(key) != KeySize {
			t.Fatalf("openssl unwrapping: %v (%d bytes)", err, len(key))
		}
		encPath := filepath.Join(dir, "enc")
		os.WriteFile(encPath, enc, 0o600)
		plain, err := exec.Command("openssl", "enc", "-d", tc.ossl, "-nopad", "-K", hex.EncodeToString(key[:32]),
			"-iv", tc.iv(k.IV), "-in", encPath).Output()
		if err != nil {
			t.Fatalf("openssl %s: %v", tc.ossl, err)
		}
		if !bytes.Equal(plain, core) {
			t.Fatalf("%v: openssl's plaintext differs from the core", tc.alg)
		}
	}
}

// BenchmarkStream encrypts 1440-byte messages in order, as the client does.
func BenchmarkStream(b *testing.B) {
	a, _, _ := keys(b)
	src := plainCore(1 << 20)
	dst := make([]byte, 1440)
	for _, alg := range []Algorithm{AES256CBC, ChaCha20} {
		b.Run(alg.String(), func(b *testing.B) {
			e, err := NewEncryptor(&a.PublicKey, alg, rand.Reader)
			if err != nil {
				b.Fatal(err)
			}
			b.SetBytes(int64(len(src) / 1440 * 1440))
			b.ReportAllocs()
			for b.Loop() {
				e.Start(int64(len(src)))
				for off := 0; off+1440 <= len(src); off += 1440 {
					e.Next(dst, src[off:off+1440])
				}
			}
		})
	}
}
