package ekcd

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rsa"
	"crypto/sha1"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io"

	"golang.org/x/crypto/chacha20"

	"github.com/tamadump/tamadump/netdump/wire"
)

// Errors of a decryption; each says which input is at fault.
var (
	ErrKeyTruncated  = errors.New("ekcd: the key file is truncated")
	ErrKeyAlgorithm  = errors.New("ekcd: the key file names an unknown cipher")
	ErrWrongKey      = errors.New("ekcd: the key file was not made for this private key")
	ErrNotThisDump   = errors.New("ekcd: the key does not decrypt this core (a key file from another dump?)")
	ErrCoreTruncated = errors.New("ekcd: the encrypted core is not a whole number of 16-byte blocks")
)

// Decryptor undoes one dump's encryption, in file order.
type Decryptor struct {
	alg     Algorithm
	iv      [wire.KeyIVSize]byte
	block   cipher.Block
	chain   [BlockSize]byte
	chacha  *chacha20.Cipher
	off     int64
	scratch []byte
}

// NewDecryptor unwraps the key in blob (a key file's contents) with priv.
// OAEP is tried first and PKCS#1 v1.5, which older FreeBSD kernels used,
// second, as decryptcore does.
func NewDecryptor(priv *rsa.PrivateKey, blob []byte) (*Decryptor, error) {
	k, err := wire.ParseKey(blob)
	if err != nil {
		return nil, fmt.Errorf("%w (%d bytes): %v", ErrKeyTruncated, len(blob), err)
	}
	alg := Algorithm(k.Encryption)
	if alg != AES256CBC && alg != ChaCha20 {
		return nil, fmt.Errorf("%w (%d)", ErrKeyAlgorithm, k.Encryption)
	}
	if int(k.EncryptedKeySize) != priv.Size() {
		return nil, fmt.Errorf("%w: it holds a key wrapped for a %d-bit RSA key, the private key has %d bits",
			ErrWrongKey, 8*k.EncryptedKeySize, priv.N.BitLen())
	}
	key, err := rsa.DecryptOAEP(sha1.New(), nil, priv, k.EncryptedKey, nil)
	if err != nil {
		key, err = rsa.DecryptPKCS1v15(nil, priv, k.EncryptedKey)
	}
	if err != nil || len(key) != KeySize {
		return nil, ErrWrongKey
	}
	d := &Decryptor{alg: alg, iv: k.IV, scratch: make([]byte, wire.DataSize)}
	if d.block, err = aes.NewCipher(key[:CipherKeySize]); err != nil {
		return nil, err
	}
	copy(d.chain[:], k.IV[:BlockSize])
	var nonce [chacha20.NonceSize]byte
	copy(nonce[4:], k.IV[:8])
	if d.chacha, err = chacha20.NewUnauthenticatedCipher(key[:CipherKeySize], nonce[:]); err != nil {
		return nil, err
	}
	clear(key)
	return d, nil
}

// Algorithm is the dump's cipher.
func (d *Decryptor) Algorithm() Algorithm { return d.alg }

// Decrypt decrypts src, the next bytes of the core, into dst (which may be
// src).
func (d *Decryptor) Decrypt(dst, src []byte) error {
	if len(src)%BlockSize != 0 || len(dst) < len(src) {
		return ErrNotBlock
	}
	if len(src) == 0 {
		return nil
	}
	switch d.alg {
	case AES256CBC:
		var next [BlockSize]byte
		copy(next[:], src[len(src)-BlockSize:])
		cipher.NewCBCDecrypter(d.block, d.chain[:]).CryptBlocks(dst[:len(src)], src)
		d.chain = next
	case ChaCha20:
		d.chacha.XORKeyStream(dst[:len(src)], src)
	}
	d.off += int64(len(src))
	return nil
}

// Zero passes over n bytes that the client declared zero instead of sending
// (zero-page elision): the stream advances as the encryptor's did.
func (d *Decryptor) Zero(n int64) error {
	if n%BlockSize != 0 {
		return ErrNotBlock
	}
	switch d.alg {
	case AES256CBC:
		enc := cipher.NewCBCEncrypter(d.block, d.chain[:])
		for left := n; left > 0; {
			k := min(left, int64(len(d.scratch)))
			clear(d.scratch[:k])
			enc.CryptBlocks(d.scratch[:k], d.scratch[:k])
			left -= k
			if left == 0 {
				copy(d.chain[:], d.scratch[k-BlockSize:k])
			}
		}
	case ChaCha20:
		d.chacha.SetCounter(uint32((d.off + n) / 64))
		if r := (d.off + n) % 64; r != 0 {
			d.chacha.XORKeyStream(d.scratch[:r], d.scratch[:r])
		}
	}
	d.off += n
	return nil
}

// Core magics: an ELF core, or a FreeBSD minidump.
var coreMagics = [][]byte{[]byte("\x7fELF"), []byte("minidump FreeBSD/")}

// DecryptCore writes the plaintext of the encrypted core r to w and returns
// its length. A page (4096 bytes at a 4096-aligned offset) that is all zero
// in the encrypted core is a hole left by zero-page elision and decrypts to
// zeros (a real ciphertext page is all zero with probability 2^-32768).
// The first block must decrypt to a known core format, which tells a key
// file from another dump before anything is written.
func DecryptCore(w io.Writer, r io.Reader, d *Decryptor) (int64, error) {
	buf := make([]byte, 64<<10)
	var total int64
	for {
		n, err := io.ReadFull(r, buf)
		if err != nil && err != io.ErrUnexpectedEOF && err != io.EOF {
			return total, err
		}
		if n%BlockSize != 0 {
			return total, fmt.Errorf("%w (%d bytes)", ErrCoreTruncated, total+int64(n))
		}
		b := buf[:n]
		for p := 0; p < len(b); p += wire.DataSize {
			page := b[p:min(p+wire.DataSize, len(b))]
			if len(page) == wire.DataSize && bytes.Equal(page, zeroPage[:]) {
				if err := d.Zero(int64(len(page))); err != nil {
					return total, err
				}
			} else if err := d.Decrypt(page, page); err != nil {
				return total, err
			}
			if total == 0 && p == 0 && !knownCore(page) {
				return 0, ErrNotThisDump
			}
		}
		if _, err := w.Write(b); err != nil {
			return total, err
		}
		total += int64(n)
		if n < len(buf) {
			return total, nil
		}
	}
}

func knownCore(b []byte) bool {
	for _, m := range coreMagics {
		if bytes.HasPrefix(b, m) {
			return true
		}
	}
	return false
}

// ParsePublicKey reads an RSA public key in PEM: PKIX ("PUBLIC KEY", what
// `openssl rsa -pubout` writes and dumpon -k reads) or PKCS#1 ("RSA PUBLIC
// KEY").
func ParsePublicKey(data []byte) (*rsa.PublicKey, error) {
	b, _ := pem.Decode(data)
	if b == nil {
		return nil, errors.New("ekcd: no PEM block in the public key")
	}
	switch b.Type {
	case "PUBLIC KEY", "RSA PUBLIC KEY":
		return ParsePublicKeyDER(b.Bytes)
	}
	return nil, fmt.Errorf("ekcd: PEM block %q is not a public key", b.Type)
}

// ParsePublicKeyDER reads the DER inside such a PEM block, either form.
func ParsePublicKeyDER(der []byte) (*rsa.PublicKey, error) {
	if k, err := x509.ParsePKCS1PublicKey(der); err == nil {
		return k, nil
	}
	k, err := x509.ParsePKIXPublicKey(der)
	if err != nil {
		return nil, fmt.Errorf("ekcd: public key: %w", err)
	}
	if rk, ok := k.(*rsa.PublicKey); ok {
		return rk, nil
	}
	return nil, errors.New("ekcd: the public key is not RSA")
}

// ParsePrivateKey reads an RSA private key in PEM: PKCS#1 ("RSA PRIVATE
// KEY", what `openssl genrsa` writes) or PKCS#8 ("PRIVATE KEY").
func ParsePrivateKey(data []byte) (*rsa.PrivateKey, error) {
	b, _ := pem.Decode(data)
	if b == nil {
		return nil, errors.New("ekcd: no PEM block in the private key")
	}
	switch b.Type {
	case "RSA PRIVATE KEY":
		return x509.ParsePKCS1PrivateKey(b.Bytes)
	case "PRIVATE KEY":
		k, err := x509.ParsePKCS8PrivateKey(b.Bytes)
		if err != nil {
			return nil, fmt.Errorf("ekcd: private key: %w", err)
		}
		if rk, ok := k.(*rsa.PrivateKey); ok {
			return rk, nil
		}
		return nil, errors.New("ekcd: the private key is not RSA")
	}
	return nil, fmt.Errorf("ekcd: PEM block %q is not a private key", b.Type)
}
