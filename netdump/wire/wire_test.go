package wire

import (
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"testing"
)

func TestHeaderLayout(t *testing.T) {
	h := Header{Type: VMCore, Seqno: 0x01020304, Offset: 0x1112131415161718, Len: 3, Aux2: 0x21222324}
	var b [HeaderSize + 3]byte
	if _, err := AppendMessage(b[:], h, []byte{0xaa, 0xbb, 0xcc}); err != nil {
		t.Fatal(err)
	}
	want := "00000003" + "01020304" + "1112131415161718" + "00000003" + "21222324" + "aabbcc"
	if got := hex.EncodeToString(b[:]); got != want {
		t.Fatalf("encoded %s\nwant    %s", got, want)
	}
	g, p, err := ParseMessage(b[:])
	if err != nil || g != h || !bytes.Equal(p, []byte{0xaa, 0xbb, 0xcc}) {
		t.Fatalf("round trip: %+v %x %v", g, p, err)
	}
}

func TestParseMessageErrors(t *testing.T) {
	mk := func(typ MsgType, hdrLen uint32, payload int) []byte {
		b := make([]byte, HeaderSize+payload)
		Header{Type: typ, Len: hdrLen}.Put(b)
		return b
	}
	cases := []struct {
		name string
		b    []byte
		want error
	}{
		{"runt", make([]byte, 23), ErrRunt},
		{"empty", nil, ErrRunt},
		{"len too big", mk(VMCore, 10, 5), ErrLength},
		{"len too small", mk(VMCore, 4, 5), ErrLength},
		{"huge len field", mk(VMCore, 0xffffffff, 0), ErrLength},
		{"type 0", mk(0, 0, 0), ErrType},
		{"type 6", mk(6, 0, 0), ErrType},
		{"oversize", mk(VMCore, MaxPayload+1, MaxPayload+1), ErrTooLarge},
	}
	for _, c := range cases {
		if _, _, err := ParseMessage(c.b); !errors.Is(err, c.want) {
			t.Errorf("%s: got %v, want %v", c.name, err, c.want)
		}
	}
	if _, _, err := ParseMessage(mk(VMCore, MaxPayload, MaxPayload)); err != nil {
		t.Errorf("largest payload rejected: %v", err)
	}
}

func TestAck(t *testing.T) {
	var b [4]byte
	PutAck(b[:], 0xdeadbeef)
	if hex.EncodeToString(b[:]) != "deadbeef" {
		t.Fatalf("ack %x", b)
	}
	if s, err := ParseAck(b[:]); err != nil || s != 0xdeadbeef {
		t.Fatal(s, err)
	}
	for _, n := range []int{0, 3, 5, 24} {
		if _, err := ParseAck(make([]byte, n)); err != ErrNotAck {
			t.Errorf("len %d: %v", n, err)
		}
	}
}

func TestAckList(t *testing.T) {
	acks := func(seqnos ...uint32) []byte {
		var b []byte
		for _, s := range seqnos {
			b = binary.BigEndian.AppendUint32(b, s)
		}
		return b
	}
	var b [MaxAckListSize]byte
	n, err := PutAckList(b[:], acks(7, 8, 9), acks(5, 6))
	if err != nil || hex.EncodeToString(b[:n]) != "00000003"+"00000007000000080000000900000005"+"00000006" {
		t.Fatalf("%x, %v", b[:n], err)
	}
	l, err := ParseAckList(b[:n])
	if err != nil || l.Len() != 5 || l.Fresh() != 3 {
		t.Fatal(l, err)
	}
	for i, want := range []uint32{7, 8, 9, 5, 6} {
		if l.Seqno(i) != want {
			t.Errorf("seqno %d: %d, want %d", i, l.Seqno(i), want)
		}
	}
	if a, err := ParseAcks(b[:n]); err != nil || a.Len() != 5 || a.Fresh() != 3 || a.Seqno(4) != 6 {
		t.Errorf("the list as Acks: %d seqnos, %d fresh, %v", a.Len(), a.Fresh(), err)
	}
	if a, _ := ParseAcks(b[:n]); !a.Has(5) || a.Has(4) {
		t.Errorf("Has: 5 %v, 4 %v", a.Has(5), a.Has(4))
	}
	if a, err := ParseAcks(acks(9)); err != nil || a.Len() != 1 || a.Fresh() != 1 || a.Seqno(0) != 9 {
		t.Errorf("an ACK as Acks: %v, %v", a, err)
	}
	if _, err := ParseAcks(acks(0, 1)); err != ErrNotAckList {
		t.Errorf("no fresh seqno, as Acks: %v", err)
	}
	// A 4-byte ACK is never a list, nor a list a 4-byte ACK.
	if _, err := ParseAck(b[:n]); err != ErrNotAck {
		t.Errorf("a list parsed as an ACK: %v", err)
	}
	for name, bad := range map[string][]byte{
		"ACK":             acks(1),
		"no fresh":        acks(0, 1),
		"fresh past end":  acks(2, 1),
		"partial seqno":   append(acks(1, 1), 0),
		"too long":        append(acks(1), make([]byte, 4*MaxAckList+4)...),
		"header only":     acks(0),
		"empty":           nil,
		"fresh very high": acks(0xffffffff, 1),
	} {
		if _, err := ParseAckList(bad); err != ErrNotAckList {
			t.Errorf("%s: %v", name, err)
		}
	}
	if _, err := PutAckList(b[:], nil, acks(1)); err != ErrNotAckList {
		t.Errorf("no fresh seqno: %v", err)
	}
	if _, err := PutAckList(b[:], make([]byte, 4*MaxAckList), acks(1)); err != ErrNotAckList {
		t.Errorf("over MaxAckList: %v", err)
	}
	if _, err := PutAckList(b[:8], acks(1, 2), nil); err != ErrShortBuffer {
		t.Errorf("short buffer: %v", err)
	}
	if n, err := PutAckList(b[:], make([]byte, 4*MaxAckList), nil); err != nil || n != MaxAckListSize {
		t.Errorf("a full list: %d, %v", n, err)
	}
}

func TestHeraldPath(t *testing.T) {
	long := append(bytes.Repeat([]byte("a"), MaxHeraldPath-1), 0)
	cases := []struct {
		in   []byte
		want string
	}{
		{nil, ""},
		{[]byte("crash/box\x00"), "crash/box"},
		{[]byte("no-nul"), ""},
		{[]byte("a\x00b\x00"), "a"},
		{long, string(long[:MaxHeraldPath-1])},
		{append([]byte("x"), long...), ""},
	}
	for _, c := range cases {
		if got := string(HeraldPath(c.in)); got != c.want {
			t.Errorf("HeraldPath(%q) = %q, want %q", c.in, got, c.want)
		}
	}
}

func TestZeroRun(t *testing.T) {
	if n, ok := (Header{Type: VMCore, Aux2: 8192}).ZeroRun(); !ok || n != 8192 {
		t.Fatal("zero run not recognised")
	}
	for _, h := range []Header{{Type: VMCore}, {Type: VMCore, Len: 1, Aux2: 5}, {Type: KDH, Aux2: 5}} {
		if _, ok := h.ZeroRun(); ok {
			t.Fatalf("%+v taken as a zero run", h)
		}
	}
}

func sampleKDH() *KernelDumpHeader {
	k := &KernelDumpHeader{Version: KDHVersion, ArchitectureVersion: 2, DumpLength: 1 << 30,
		DumpTime: 1700000000, BlockSize: 4096, DumpExtent: 1 << 30}
	SetText(k.Magic[:], KDHMagic)
	SetText(k.Architecture[:], "amd64")
	SetText(k.Hostname[:], "myhost.example.org")
	k.SetVersionString("tamadump 1.0\n  builder@host\n")
	SetText(k.PanicString[:], "boom")
	return k
}

func TestKDHLayoutAndParity(t *testing.T) {
	k := sampleKDH()
	var b [KDHSize]byte
	p, err := k.Put(b[:])
	if err != nil {
		t.Fatal(err)
	}
	if Parity(b[:]) != 0 {
		t.Fatal("encoded header does not check")
	}
	if string(b[:19]) != KDHMagic || b[19] != 0 || string(b[20:25]) != "amd64" {
		t.Fatalf("magic/arch: %q %q", b[:20], b[20:32])
	}
	checks := []struct {
		off  int
		want string
	}{
		{32, "00000004"}, {36, "00000002"}, {40, "0000000040000000"}, {48, "000000006553f100"},
		{56, "00000000"}, {60, "00001000"}, {496, "0000000040000000"},
	}
	for _, c := range checks {
		if got := hex.EncodeToString(b[c.off : c.off+len(c.want)/2]); got != c.want {
			t.Errorf("offset %d: %s, want %s", c.off, got, c.want)
		}
	}
	if string(Text(b[64:128])) != "myhost.example.org" || string(Text(b[320:495])) != "boom" {
		t.Fatal("text fields")
	}
	var g KernelDumpHeader
	if err := ParseKDH(b[:], &g); err != nil {
		t.Fatal(err)
	}
	k.Parity = p
	if g != *k {
		t.Fatalf("round trip\n%+v\n%+v", g, *k)
	}
	b[100] ^= 1
	if Parity(b[:]) == 0 {
		t.Fatal("corruption not detected")
	}
	if err := ParseKDH(b[:511], &g); err != ErrShortKDH {
		t.Fatal(err)
	}
}

func TestTextTruncation(t *testing.T) {
	var k KernelDumpHeader
	SetText(k.PanicString[:], string(bytes.Repeat([]byte("p"), 500)))
	if len(Text(k.PanicString[:])) != len(k.PanicString)-1 {
		t.Fatal("panic string not truncated to keep its NUL")
	}
	k.SetVersionString(string(bytes.Repeat([]byte("v"), 300)))
	if v := Text(k.VersionString[:]); len(v) != 191 || v[190] != '\n' {
		t.Fatalf("version string: len %d last %q", len(v), v[len(v)-1])
	}
}

func TestKey(t *testing.T) {
	k := Key{Encryption: EncryptChaCha, EncryptedKey: bytes.Repeat([]byte{7}, 256)}
	for i := range k.IV {
		k.IV[i] = byte(i)
	}
	b := make([]byte, 8192)
	for i := range b {
		b[i] = 0xee
	}
	enc, err := k.Put(b, 4096)
	if err != nil || len(enc) != 4096 {
		t.Fatal(len(enc), err)
	}
	if enc[0] != 2 || enc[1] != 0 || enc[32] != 31 || hex.EncodeToString(enc[33:37]) != "00000100" || enc[37] != 7 || enc[37+256] != 0 || enc[4095] != 0 {
		t.Fatal("key layout")
	}
	g, err := ParseKey(enc)
	if err != nil || g.Encryption != 2 || g.IV != k.IV || !bytes.Equal(g.EncryptedKey, k.EncryptedKey) {
		t.Fatal("round trip", err)
	}
	if _, err := ParseKey(enc[:36]); err != ErrKeyShort {
		t.Fatal(err)
	}
	if _, err := ParseKey(enc[:37+255]); err != ErrKeyLength {
		t.Fatal(err)
	}
	if KeyBlobSize(2048, 4096) != 4096 || KeyBlobSize(4096, 4096) != 8192 {
		t.Fatal("KeyBlobSize")
	}
}

func TestNoAllocation(t *testing.T) {
	k := sampleKDH()
	var msg [HeaderSize + 1448]byte
	var kdh [KDHSize]byte
	var g KernelDumpHeader
	payload := make([]byte, 1448)
	allocs := testing.AllocsPerRun(500, func() {
		m, _ := AppendMessage(msg[:], Header{Type: VMCore, Seqno: 9, Offset: 4096}, payload)
		h, p, err := ParseMessage(m)
		if err != nil || len(p) != 1448 || h.Seqno != 9 {
			panic("round trip")
		}
		_, _, _ = ParseMessage(m[:10])
		_, _ = ParseAck(m[:4])
		if n, _ := PutAckList(msg[:], payload[:8], payload[:4]); n != 16 {
			panic("ack list")
		}
		if l, _ := ParseAckList(msg[:16]); l.Seqno(l.Len()-1) != 0 {
			panic("ack list round trip")
		}
		_, _ = k.Put(kdh[:])
		_ = ParseKDH(kdh[:], &g)
		_, _ = ParseKey(kdh[:])
		_ = HeraldPath(m)
	})
	if allocs != 0 {
		t.Fatalf("%v allocations per encode/decode round", allocs)
	}
}

func BenchmarkHeaderEncode(b *testing.B) {
	var buf [HeaderSize]byte
	b.ReportAllocs()
	b.SetBytes(HeaderSize)
	for i := 0; b.Loop(); i++ {
		Header{Type: VMCore, Seqno: uint32(i), Offset: uint64(i) * 1448, Len: 1448}.Put(buf[:])
	}
}

func BenchmarkMessageDecode(b *testing.B) {
	m, _ := AppendMessage(make([]byte, HeaderSize+1448), Header{Type: VMCore, Seqno: 1}, make([]byte, 1448))
	b.ReportAllocs()
	b.SetBytes(int64(len(m)))
	for b.Loop() {
		if _, _, err := ParseMessage(m); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkKDHEncodeDecode(b *testing.B) {
	k := sampleKDH()
	var buf [KDHSize]byte
	var g KernelDumpHeader
	b.ReportAllocs()
	for b.Loop() {
		k.Put(buf[:])
		ParseKDH(buf[:], &g)
	}
}
