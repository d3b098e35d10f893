// Package ekcd encrypts kernel dumps as FreeBSD's encrypted kernel crash
// dumps (EKCD) are encrypted, and decrypts them again.
//
// Before the crash the dumping side draws a random 64-byte key (the cipher
// uses its first 32 bytes) and a random 32-byte IV seed, wraps the key with
// the administrator's RSA public key (OAEP with SHA-1 and MGF1-SHA-1, an
// empty label) and lays out struct kerneldumpkey: the algorithm (1 byte),
// the IV (32 bytes), the wrapped key's size (4 bytes, big-endian) and the
// wrapped key, zero-padded to the 4096-byte dump block size. Each dump
// replaces the IV with the SHA-256 of the previous one, so the dumps of one
// boot (a debugger can dump several times) are each encrypted differently.
//
// The whole vmcore is one stream in file order: AES-256-CBC with the first
// 16 bytes of the IV, chained from block to block across messages without
// padding (a dump is a whole number of 16-byte blocks), or ChaCha20 with the
// original 64-bit block counter starting at 0 and the first 8 bytes of the
// IV as its nonce. The kernel dump header is not encrypted.
//
// The Encryptor allocates only in NewEncryptor; a dump runs after a panic.
package ekcd

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rsa"
	"crypto/sha1"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"

	"golang.org/x/crypto/chacha20"

	"github.com/tamadump/tamadump/netdump/wire"
)

// Algorithm is kdk_encryption.
type Algorithm uint8

// The algorithms FreeBSD's dumpon offers.
const (
	AES256CBC Algorithm = wire.EncryptAESCBC
	ChaCha20  Algorithm = wire.EncryptChaCha
)

func (a Algorithm) String() string {
	switch a {
	case AES256CBC:
		return "aes256-cbc"
	case ChaCha20:
		return "chacha20"
	}
	return fmt.Sprintf("algorithm %d", uint8(a))
}

// ParseAlgorithm reads dumpon's -C names.
func ParseAlgorithm(s string) (Algorithm, error) {
	switch s {
	case "aes256-cbc", "aes", "":
		return AES256CBC, nil
	case "chacha20", "chacha":
		return ChaCha20, nil
	}
	return 0, fmt.Errorf("ekcd: unknown cipher %q (aes256-cbc or chacha20)", s)
}

// Sizes.
const (
	// KeySize is KERNELDUMP_KEY_MAX_SIZE: the random key that is wrapped.
	KeySize = 64
	// CipherKeySize is the part of it the ciphers use.
	CipherKeySize = 32
	// BlockSize is what every encrypted piece must be a multiple of
	// (the AES block).
	BlockSize = aes.BlockSize
	// MaxWrappedKey is KERNELDUMP_ENCKEY_MAX_SIZE: RSA keys up to 16384
	// bits.
	MaxWrappedKey = 16384 / 8
	// BlobBlock is the block size the key blob is padded to (the netdump
	// dumper's).
	BlobBlock = wire.DataSize
	// maxChaCha is where the 32-bit block counter of the IETF variant
	// would reach the high word of the original 64-bit one.
	maxChaCha = 64 << 32
)

// Errors of a dump in progress, made before it.
var (
	ErrNotBlock = errors.New("ekcd: encrypted piece is not a whole number of 16-byte blocks")
	ErrTooLarge = errors.New("ekcd: dump larger than 256 GiB cannot be encrypted with chacha20")
	ErrPosition = errors.New("ekcd: encryption out of file order")
)

// Pos is a place in the stream: the file offset and, for AES-CBC, the
// ciphertext block before it. A saved Pos re-encrypts the same bytes to the
// same ciphertext (a retransmission).
type Pos struct {
	Off   int64
	Chain [BlockSize]byte
}

// Encryptor holds the key material of one boot and the stream of the dump
// in progress.
type Encryptor struct {
	alg     Algorithm
	key     [KeySize]byte
	iv      [wire.KeyIVSize]byte
	blob    []byte
	cbc     cipher.BlockMode
	setIV   interface{ SetIV([]byte) }
	chacha  chacha20.Cipher // positioned at 0 for the dump in progress
	work    chacha20.Cipher
	discard [64]byte
	chain   [BlockSize]byte
	page    [wire.DataSize]byte // ciphertext of skipped zeros
	pos     Pos
	size    int64
}

// NewEncryptor draws the key and IV seed from random and wraps the key with
// pub. The IV in the blob is the first dump's (Start rehashes it).
func NewEncryptor(pub *rsa.PublicKey, alg Algorithm, random io.Reader) (*Encryptor, error) {
	if alg != AES256CBC && alg != ChaCha20 {
		return nil, fmt.Errorf("ekcd: unknown %v", alg)
	}
	if pub.Size() > MaxWrappedKey {
		return nil, fmt.Errorf("ekcd: RSA key of %d bits larger than the 16384 FreeBSD allows", pub.N.BitLen())
	}
	e := &Encryptor{alg: alg}
	if _, err := io.ReadFull(random, e.key[:]); err != nil {
		return nil, fmt.Errorf("ekcd: random key: %w", err)
	}
	if _, err := io.ReadFull(random, e.iv[:]); err != nil {
		return nil, fmt.Errorf("ekcd: random IV: %w", err)
	}
	wrapped, err := rsa.EncryptOAEP(sha1.New(), random, pub, e.key[:], nil)
	if err != nil {
		return nil, fmt.Errorf("ekcd: wrapping the key: %w", err)
	}
	k := wire.Key{Encryption: uint8(alg), EncryptedKey: wrapped}
	if e.blob, err = k.Put(make([]byte, wire.KeyBlobSize(len(wrapped), BlobBlock)), BlobBlock); err != nil {
		return nil, err
	}
	block, err := aes.NewCipher(e.key[:CipherKeySize])
	if err != nil {
		return nil, err
	}
	e.cbc = cipher.NewCBCEncrypter(block, e.iv[:BlockSize])
	var ok bool
	if e.setIV, ok = e.cbc.(interface{ SetIV([]byte) }); !ok {
		return nil, errors.New("ekcd: the CBC encrypter cannot be re-seeded")
	}
	return e, nil
}

// Algorithm is the cipher in use.
func (e *Encryptor) Algorithm() Algorithm { return e.alg }

// KeyBlob is the padded struct kerneldumpkey of the dump in progress, the
// EKCD_KEY payload; its length is the header's dumpkeysize.
func (e *Encryptor) KeyBlob() []byte { return e.blob }

// Start begins a dump of size bytes (a multiple of BlockSize): the IV
// becomes the SHA-256 of the previous one and is written into the blob.
func (e *Encryptor) Start(size int64) error {
	if size%BlockSize != 0 {
		return ErrNotBlock
	}
	if e.alg == ChaCha20 && size > maxChaCha {
		return ErrTooLarge
	}
	e.iv = sha256.Sum256(e.iv[:])
	copy(e.blob[1:1+wire.KeyIVSize], e.iv[:])
	e.size = size
	e.pos = Pos{}
	copy(e.pos.Chain[:], e.iv[:BlockSize])
	if e.alg == ChaCha20 {
		var nonce [chacha20.NonceSize]byte
		copy(nonce[4:], e.iv[:8])
		c, err := chacha20.NewUnauthenticatedCipher(e.key[:CipherKeySize], nonce[:])
		if err != nil {
			return err
		}
		e.chacha = *c
	}
	return nil
}

// Pos is where the next Next continues.
func (e *Encryptor) Pos() Pos { return e.pos }

// Next encrypts src, the bytes at Pos, into dst (which may be src) and
// moves Pos past them.
func (e *Encryptor) Next(dst, src []byte) error {
	return e.crypt(dst, src, &e.pos)
}

// At encrypts src, the bytes at p, into dst again as Next did.
func (e *Encryptor) At(dst, src []byte, p Pos) error {
	return e.crypt(dst, src, &p)
}

// Skip moves Pos past n zero bytes that are not sent (zero-page elision):
// the CBC chain runs through their ciphertext, which a decryptor that
// knows they are zero computes again.
func (e *Encryptor) Skip(n int64) error {
	if n%BlockSize != 0 {
		return ErrNotBlock
	}
	if e.alg == ChaCha20 {
		e.pos.Off += n
		return nil
	}
	for n > 0 {
		k := min(n, int64(len(e.page)))
		if err := e.crypt(e.page[:k], zeroPage[:k], &e.pos); err != nil {
			return err
		}
		n -= k
	}
	return nil
}

var zeroPage [wire.DataSize]byte

func (e *Encryptor) crypt(dst, src []byte, p *Pos) error {
	if len(src)%BlockSize != 0 || len(dst) < len(src) {
		return ErrNotBlock
	}
	if p.Off < 0 || p.Off+int64(len(src)) > e.size {
		return ErrPosition
	}
	if len(src) == 0 {
		return nil
	}
	switch e.alg {
	case AES256CBC:
		// Through the interface the IV would escape: hand it a field.
		e.chain = p.Chain
		e.setIV.SetIV(e.chain[:])
		e.cbc.CryptBlocks(dst[:len(src)], src)
		copy(p.Chain[:], dst[len(src)-BlockSize:len(src)])
	case ChaCha20:
		seek(&e.work, &e.chacha, p.Off, e.discard[:])
		e.work.XORKeyStream(dst[:len(src)], src)
	}
	p.Off += int64(len(src))
	return nil
}

// seek positions w at byte off of the key stream that c starts.
func seek(w, c *chacha20.Cipher, off int64, scratch []byte) {
	*w = *c
	w.SetCounter(uint32(off / 64))
	if r := off % 64; r != 0 {
		w.XORKeyStream(scratch[:r], scratch[:r])
	}
}
