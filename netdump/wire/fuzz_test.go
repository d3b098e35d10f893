package wire

import (
	"bytes"
	"testing"
)

// The decoders must never panic and must agree with the encoders on
// whatever they accept.

func FuzzParseMessage(f *testing.F) {
	m, _ := AppendMessage(make([]byte, 64), Header{Type: Herald, Seqno: 1, Len: 4}, []byte("abc\x00"))
	f.Add(m)
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		h, p, err := ParseMessage(b)
		if err != nil {
			return
		}
		out, err := AppendMessage(make([]byte, len(b)), h, p)
		if err != nil || !bytes.Equal(out, b) {
			t.Fatalf("re-encoding differs: %v", err)
		}
		HeraldPath(p)
	})
}

func FuzzParseAck(f *testing.F) {
	f.Add([]byte{0, 0, 0, 1})
	f.Fuzz(func(t *testing.T, b []byte) {
		s, err := ParseAck(b)
		if err != nil {
			return
		}
		var out [AckSize]byte
		PutAck(out[:], s)
		if !bytes.Equal(out[:], b) {
			t.Fatal("re-encoding differs")
		}
	})
}

func FuzzParseAckList(f *testing.F) {
	f.Add([]byte{0, 0, 0, 1, 0, 0, 0, 9})
	f.Add([]byte{0, 0, 0, 1, 0, 0, 0, 9, 0, 0, 0, 8})
	f.Fuzz(func(t *testing.T, b []byte) {
		l, err := ParseAckList(b)
		if err != nil {
			return
		}
		if l.Fresh() < 1 || l.Fresh() > l.Len() || l.Len() > MaxAckList {
			t.Fatalf("fresh %d of %d", l.Fresh(), l.Len())
		}
		var out [MaxAckListSize]byte
		f := 4 + 4*l.Fresh()
		if n, err := PutAckList(out[:], b[4:f], b[f:]); err != nil || !bytes.Equal(out[:n], b) {
			t.Fatalf("re-encoding differs: %v", err)
		}
	})
}

func FuzzParseKDH(f *testing.F) {
	var b [KDHSize]byte
	sampleKDH().Put(b[:])
	f.Add(b[:])
	f.Fuzz(func(t *testing.T, b []byte) {
		var k KernelDumpHeader
		if ParseKDH(b, &k) != nil {
			return
		}
		Text(k.Hostname[:])
		var out [KDHSize]byte
		k.Put(out[:])
		// Put zeroes the unused word and recomputes parity; the rest
		// must survive the round trip.
		if !bytes.Equal(out[:504], b[:504]) || Parity(out[:]) != 0 {
			t.Fatal("re-encoding differs")
		}
	})
}

func FuzzParseKey(f *testing.F) {
	k := Key{Encryption: EncryptAESCBC, EncryptedKey: []byte("secret")}
	b, _ := k.Put(make([]byte, 512), 512)
	f.Add(b)
	f.Fuzz(func(t *testing.T, b []byte) {
		k, err := ParseKey(b)
		if err != nil {
			return
		}
		out, err := k.Put(make([]byte, KeyBlobSize(len(k.EncryptedKey), 1)), 1)
		if err != nil || !bytes.Equal(out, b[:len(out)]) {
			t.Fatal("re-encoding differs")
		}
	})
}
