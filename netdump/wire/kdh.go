package wire

import (
	"bytes"
	"encoding/binary"
)

// KDHSize is sizeof(struct kerneldumpheader).
const KDHSize = 512

// Kernel dump header constants.
const (
	KDHMagic      = "FreeBSD Kernel Dump"
	KDHTextMagic  = "FreeBSD Text Dump"
	KDHVersion    = 4
	CompressNone  = 0
	CompressGzip  = 1
	CompressZstd  = 2
	EncryptAESCBC = 1
	EncryptChaCha = 2
	KeyIVSize     = 32
	KeyHeaderSize = 1 + KeyIVSize + 4
)

// KernelDumpHeader holds struct kerneldumpheader with its text fields as fixed
// NUL-padded arrays, so a decoded header lives on the stack.
type KernelDumpHeader struct {
	Magic               [20]byte
	Architecture        [12]byte
	Version             uint32
	ArchitectureVersion uint32
	DumpLength          uint64
	DumpTime            uint64
	DumpKeySize         uint32
	BlockSize           uint32
	Hostname            [64]byte
	VersionString       [192]byte
	PanicString         [175]byte
	Compression         uint8
	DumpExtent          uint64
	Parity              uint32
}

// SetText copies s into a NUL-padded field, truncated so that at least
// one NUL remains (the C strings must stay terminated).
func SetText(field []byte, s string) {
	n := copy(field[:len(field)-1], s)
	clear(field[n:])
}

// Text returns the field up to its first NUL (aliasing it).
func Text(field []byte) []byte {
	if i := bytes.IndexByte(field, 0); i >= 0 {
		return field[:i]
	}
	return field
}

// SetVersionString stores a kernel version string. The kernel's string
// ends in a newline; when it has to be truncated the last kept byte is
// forced to a newline, as the kernel does.
func (k *KernelDumpHeader) SetVersionString(s string) {
	SetText(k.VersionString[:], s)
	if len(s) >= len(k.VersionString)-1 {
		k.VersionString[len(k.VersionString)-2] = '\n'
	}
}

// Put encodes k into b[:KDHSize], computing the parity (k.Parity is
// ignored). It returns the parity written.
func (k *KernelDumpHeader) Put(b []byte) (uint32, error) {
	if len(b) < KDHSize {
		return 0, ErrShortBuffer
	}
	b = b[:KDHSize]
	copy(b[0:20], k.Magic[:])
	copy(b[20:32], k.Architecture[:])
	binary.BigEndian.PutUint32(b[32:], k.Version)
	binary.BigEndian.PutUint32(b[36:], k.ArchitectureVersion)
	binary.BigEndian.PutUint64(b[40:], k.DumpLength)
	binary.BigEndian.PutUint64(b[48:], k.DumpTime)
	binary.BigEndian.PutUint32(b[56:], k.DumpKeySize)
	binary.BigEndian.PutUint32(b[60:], k.BlockSize)
	copy(b[64:128], k.Hostname[:])
	copy(b[128:320], k.VersionString[:])
	copy(b[320:495], k.PanicString[:])
	b[495] = k.Compression
	binary.BigEndian.PutUint64(b[496:], k.DumpExtent)
	binary.BigEndian.PutUint32(b[504:], 0)
	binary.BigEndian.PutUint32(b[508:], 0)
	p := Parity(b)
	binary.BigEndian.PutUint32(b[508:], p)
	return p, nil
}

// ParseKDH decodes the first KDHSize bytes of b into k. Parity is not
// judged here (netdumpd records Pass/Fail instead of rejecting); use
// Parity(b[:KDHSize]) == 0 for that.
func ParseKDH(b []byte, k *KernelDumpHeader) error {
	if len(b) < KDHSize {
		return ErrShortKDH
	}
	copy(k.Magic[:], b[0:20])
	copy(k.Architecture[:], b[20:32])
	k.Version = binary.BigEndian.Uint32(b[32:])
	k.ArchitectureVersion = binary.BigEndian.Uint32(b[36:])
	k.DumpLength = binary.BigEndian.Uint64(b[40:])
	k.DumpTime = binary.BigEndian.Uint64(b[48:])
	k.DumpKeySize = binary.BigEndian.Uint32(b[56:])
	k.BlockSize = binary.BigEndian.Uint32(b[60:])
	copy(k.Hostname[:], b[64:128])
	copy(k.VersionString[:], b[128:320])
	copy(k.PanicString[:], b[320:495])
	k.Compression = b[495]
	k.DumpExtent = binary.BigEndian.Uint64(b[496:])
	k.Parity = binary.BigEndian.Uint32(b[508:])
	return nil
}

// Parity is the XOR of the 32-bit words of b (len a multiple of 4). Over
// a whole header including its parity word it is 0 for a valid header.
// A plain XOR of raw words is independent of byte order.
func Parity(b []byte) uint32 {
	var p uint32
	for i := 0; i+4 <= len(b); i += 4 {
		p ^= binary.BigEndian.Uint32(b[i:])
	}
	return p
}

// Key is struct kerneldumpkey; EncryptedKey aliases the decoded buffer.
type Key struct {
	Encryption       uint8
	IV               [KeyIVSize]byte
	EncryptedKeySize uint32
	EncryptedKey     []byte
}

// ParseKey decodes a key blob (as sent in EKCD_KEY messages, possibly
// padded to the block size).
func ParseKey(b []byte) (Key, error) {
	var k Key
	if len(b) < KeyHeaderSize {
		return k, ErrKeyShort
	}
	k.Encryption = b[0]
	copy(k.IV[:], b[1:1+KeyIVSize])
	k.EncryptedKeySize = binary.BigEndian.Uint32(b[1+KeyIVSize:])
	if uint64(len(b)-KeyHeaderSize) < uint64(k.EncryptedKeySize) {
		return k, ErrKeyLength
	}
	k.EncryptedKey = b[KeyHeaderSize : KeyHeaderSize+int(k.EncryptedKeySize)]
	return k, nil
}

// KeyBlobSize is the padded size of a key blob: header plus key rounded
// up to the block size, as the kernel reserves it.
func KeyBlobSize(encryptedKeySize, blockSize int) int {
	n := KeyHeaderSize + encryptedKeySize
	return (n + blockSize - 1) / blockSize * blockSize
}

// Put encodes k into b, which must hold KeyBlobSize bytes; padding is
// zeroed. It returns the used part of b.
func (k *Key) Put(b []byte, blockSize int) ([]byte, error) {
	n := KeyBlobSize(len(k.EncryptedKey), blockSize)
	if len(b) < n {
		return nil, ErrShortBuffer
	}
	b = b[:n]
	b[0] = k.Encryption
	copy(b[1:], k.IV[:])
	binary.BigEndian.PutUint32(b[1+KeyIVSize:], uint32(len(k.EncryptedKey)))
	m := copy(b[KeyHeaderSize:], k.EncryptedKey)
	clear(b[KeyHeaderSize+m:])
	return b, nil
}
