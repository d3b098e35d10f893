package server

import (
	"bytes"
	"net"
	"slices"
	"testing"
	"time"

	"github.com/tamadump/tamadump/netdump/wire"
)

// TestAckLists: a client whose HERALD asks for ACK lists gets every
// message of a window acknowledged fresh exactly once, each list repeating
// what the two datagrams before it acknowledged fresh, and its dump is
// whole.
// A client that does not ask (FreeBSD's) gets 4-byte ACKs only, one per
// message. (How few lists a window takes depends on how many datagrams
// each read finds: the benchmarks count them.)
func TestAckLists(t *testing.T) {
	h := newHarness(t, nil)
	const n, size = 64, 1400
	core := pattern(7, n*size)
	for i, lists := range []bool{true, false} {
		c := h.client(byte(30 + i))
		c.Lists = lists
		if err := c.Herald(""); err != nil {
			t.Fatal(err)
		}
		first := c.Seq()
		var b [wire.HeaderSize + size]byte
		for k := range uint32(n) {
			off := int(k) * size
			m, _ := wire.AppendMessage(b[:], wire.Header{Type: wire.VMCore, Seqno: first + k, Offset: uint64(off)}, core[off:off+size])
			if err := c.SendRaw(m); err != nil {
				t.Fatal(err)
			}
		}
		fresh := map[uint32]int{}
		var prev, before []uint32 // the last two datagrams' fresh seqnos
		datagrams := 0
		var lastDgram []byte
		for len(fresh) < n {
			var r [wire.MaxAckListSize + 1]byte
			k, err := c.ReadAck(r[:], 2*time.Second)
			if err != nil {
				t.Fatalf("lists %v: %d of %d messages acknowledged: %v", lists, len(fresh), n, err)
			}
			if bytes.Equal(r[:k], lastDgram) {
				continue // the idle repeat of the last one
			}
			lastDgram = append(lastDgram[:0], r[:k]...)
			datagrams++
			var now []uint32
			if a, err := wire.ParseAck(r[:k]); err == nil {
				now = []uint32{a}
			} else if l, err := wire.ParseAckList(r[:k]); err == nil && lists {
				for j := range l.Fresh() {
					now = append(now, l.Seqno(j))
				}
				var rep []uint32
				for j := l.Fresh(); j < l.Len(); j++ {
					rep = append(rep, l.Seqno(j))
				}
				if want := append(slices.Clone(prev), before...); !slices.Equal(rep, want) {
					t.Errorf("list repeats %v, the two datagrams before acknowledged %v", rep, want)
				}
			} else {
				t.Fatalf("lists %v: a %d-byte datagram %x", lists, k, r[:k])
			}
			for _, a := range now {
				fresh[a]++
			}
			prev, before = now, prev
		}
		for k := range uint32(n) {
			if fresh[first+k] != 1 {
				t.Errorf("lists %v: seqno %d acknowledged fresh %d times", lists, first+k, fresh[first+k])
			}
		}
		t.Logf("lists %v: %d messages acknowledged in %d datagrams", lists, n, datagrams)
		c.Skip(n)
		if err := c.Finish(); err != nil {
			t.Fatal(err)
		}
		host := net.IPv4(127, 0, 21, byte(30+i)).String()
		h.log.waitLog(t, "Completed dump from client "+host, 1)
		if got := h.read("vmcore." + host + ".0"); !bytes.Equal(got, core) {
			t.Errorf("lists %v: vmcore differs (%d bytes)", lists, len(got))
		}
	}
}

// TestAckListRepeats: each list repeats the seqnos the two before it
// acknowledged fresh, so two lists lost in a row cost the client nothing;
// the first ACK after the HERALD, with nothing to repeat, is a plain one.
func TestAckListRepeats(t *testing.T) {
	h := newHarness(t, nil)
	c := h.client(40)
	c.Lists = true
	if err := c.Herald(""); err != nil {
		t.Fatal(err)
	}
	raw := func(seq uint32) {
		var b [wire.HeaderSize + 100]byte
		m, _ := wire.AppendMessage(b[:], wire.Header{Type: wire.VMCore, Seqno: seq, Offset: uint64(seq) * 100}, make([]byte, 100))
		if err := c.SendRaw(m); err != nil {
			t.Fatal(err)
		}
	}
	var last []byte
	got := func() []byte { // skipping the idle repeat of the last one
		for {
			b := make([]byte, 2048)
			n, err := c.ReadAck(b, 2*time.Second)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(b[:n], last) {
				last = b[:n]
				return last
			}
		}
	}
	raw(2)
	if a, err := wire.ParseAck(got()); err != nil || a != 2 {
		t.Fatalf("first ACK: %d, %v; want a plain ACK of 2", a, err)
	}
	for seq := uint32(3); seq < 6; seq++ {
		raw(seq)
		b := got()
		l, err := wire.ParseAckList(b)
		if err != nil {
			t.Fatalf("seqno %d: %x is no list: %v", seq, b, err)
		}
		rep := min(seq-2, 2) // the lists (or the first ACK) before
		ok := l.Len() == 1+int(rep) && l.Fresh() == 1 && l.Seqno(0) == seq
		for i := 1; ok && i <= int(rep); i++ {
			ok = l.Seqno(i) == seq-uint32(i)
		}
		if !ok {
			t.Fatalf("seqno %d: list %x, want %d fresh and the %d before it repeated", seq, b, seq, rep)
		}
	}
}

// TestAckListRepeatWhenIdle: when no data follows its last list, the
// server sends that list once more after listRepeat, so a window's last
// list lost on the way does not leave the client waiting out its timeout;
// once only, and never to a client that takes 4-byte ACKs (FreeBSD's).
func TestAckListRepeatWhenIdle(t *testing.T) {
	h := newHarness(t, nil)
	for i, lists := range []bool{true, false} {
		c := h.client(byte(50 + i))
		c.Lists = lists
		if err := c.Herald(""); err != nil {
			t.Fatal(err)
		}
		first := c.Seq()
		for k := range uint32(3) {
			var b [wire.HeaderSize + 100]byte
			m, _ := wire.AppendMessage(b[:], wire.Header{Type: wire.VMCore, Seqno: first + k, Offset: uint64(k) * 100}, make([]byte, 100))
			if err := c.SendRaw(m); err != nil {
				t.Fatal(err)
			}
		}
		var last []byte
		for acked := 0; acked < 3; {
			b := make([]byte, 2048)
			n, err := c.ReadAck(b, 2*time.Second)
			if err != nil {
				t.Fatalf("lists %v: %d of 3 acknowledged: %v", lists, acked, err)
			}
			last = b[:n]
			if a, err := wire.ParseAcks(last); err == nil {
				acked += a.Fresh()
			}
		}
		b := make([]byte, 2048)
		n, err := c.ReadAck(b, 200*time.Millisecond)
		switch {
		case !lists && err == nil:
			t.Errorf("4-byte ACKs: %x came again", b[:n])
		case lists && (err != nil || !bytes.Equal(b[:n], last)):
			t.Errorf("lists: after the last list %x, %x (%v)", last, b[:n], err)
		}
		if lists {
			if n, err := c.ReadAck(b, 50*time.Millisecond); err == nil {
				t.Errorf("lists: the last list went a third time: %x", b[:n])
			}
		}
	}
}

// TestFinishedLingerWithLists: after the dump, a FINISHED sent again
// (its ACK lost) is answered each time while the session lingers, for a
// client that takes ACK lists too: the lists' idle repeat must not cut
// the lingering short.
func TestFinishedLingerWithLists(t *testing.T) {
	h := newHarness(t, nil)
	c := h.client(60)
	c.Lists = true
	if err := c.Herald(""); err != nil {
		t.Fatal(err)
	}
	if err := c.Finish(); err != nil {
		t.Fatal(err)
	}
	fin := c.Seq() - 1
	var b [wire.HeaderSize]byte
	m, _ := wire.AppendMessage(b[:], wire.Header{Type: wire.Finished, Seqno: fin}, nil)
	for i := range 3 {
		time.Sleep(20 * time.Millisecond)
		if err := c.SendRaw(m); err != nil {
			t.Fatal(err)
		}
		if !c.Expect(fin, time.Second) {
			t.Fatalf("FINISHED sent again (%d): no ACK", i+1)
		}
	}
}
