package transport

import (
	"encoding/binary"
	"net"
	"net/netip"
	"testing"
	"time"

	"golang.org/x/net/ipv4"
	"golang.org/x/sys/unix"
)

// pair is a receiver and an OSNetwork client socket connected to it,
// over IPv4 or (v6) the IPv6 loopback.
func pair(t *testing.T, v6 bool) (*net.UDPConn, *osClient) {
	t.Helper()
	network, rxIP, local := "udp4", net.IPv4(127, 0, 26, 2), netip.MustParseAddr("127.0.26.1")
	if v6 {
		network, rxIP, local = "udp6", net.IPv6loopback, netip.IPv6Loopback()
	}
	rx, err := net.ListenUDP(network, &net.UDPAddr{IP: rxIP})
	if err != nil {
		t.Skip("no", network, "loopback:", err)
	}
	t.Cleanup(func() { rx.Close() })
	c, err := OSNetwork{}.DialClient(local, rx.LocalAddr().(*net.UDPAddr).AddrPort())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return rx, c.(*osClient)
}

// TestWriteTrain: a train of 100 four-byte ACKs arrives as 100 datagrams
// in order, with segmentation offload and without (sendmmsg), over IPv4
// and IPv6.
func TestWriteTrain(t *testing.T) {
	for _, tc := range []struct{ gso, v6 bool }{{true, false}, {false, false}, {true, true}, {false, true}} {
		gso := tc.gso
		rx, c := pair(t, tc.v6)
		c.noGSO.Store(!gso)
		const n = 100
		b := make([]byte, 4*n)
		for i := range n {
			binary.BigEndian.PutUint32(b[4*i:], uint32(i))
		}
		if err := c.WriteTrain(b, 4); err != nil {
			t.Fatal(err)
		}
		rx.SetReadDeadline(time.Now().Add(2 * time.Second))
		buf := make([]byte, 64)
		for i := range n {
			k, err := rx.Read(buf)
			if err != nil {
				t.Fatalf("gso %v: datagram %d: %v", gso, i, err)
			}
			if k != 4 || binary.BigEndian.Uint32(buf) != uint32(i) {
				t.Fatalf("gso %v: datagram %d: % x", gso, i, buf[:k])
			}
		}
	}
}

// TestReadBatch: queued datagrams come in one read; one longer than its
// buffer is flagged as cut.
func TestReadBatch(t *testing.T) {
	rx, c := pair(t, false)
	// The client socket only hears its peer: send from there.
	rx.Close()
	tx, err := net.DialUDP("udp4", rx.LocalAddr().(*net.UDPAddr), c.LocalAddr().(*net.UDPAddr))
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Close()
	for _, n := range []int{10, 20, 300} {
		if _, err := tx.Write(make([]byte, n)); err != nil {
			t.Fatal(err)
		}
	}
	ms := make([]ipv4.Message, 8)
	for i := range ms {
		ms[i].Buffers = [][]byte{make([]byte, 100)}
	}
	c.SetReadDeadline(time.Now().Add(2 * time.Second))
	got := 0
	for got < 3 {
		k, err := c.ReadBatch(ms[got:])
		if err != nil {
			t.Fatal(err)
		}
		got += k
	}
	if ms[0].N != 10 || ms[1].N != 20 || ms[2].Flags&unix.MSG_TRUNC == 0 || ms[0].Flags&unix.MSG_TRUNC != 0 {
		t.Errorf("lengths %d %d %d, flags %#x %#x", ms[0].N, ms[1].N, ms[2].N, ms[0].Flags, ms[2].Flags)
	}
}

// TestGRO: with GRO a train of ten 100-byte datagrams and a 40-byte one
// from the peer (sent with segmentation offload, as loopback hands it
// on) is read at once, GROSize telling the datagrams apart; without,
// the same train comes as eleven reads.
func TestGRO(t *testing.T) {
	for _, gro := range []bool{true, false} {
		rx, c := pair(t, false)
		if gro && !c.GRO() {
			t.Skip("SKIP: no UDP_GRO")
		}
		rx.Close()
		tx, err := net.DialUDP("udp4", rx.LocalAddr().(*net.UDPAddr), c.LocalAddr().(*net.UDPAddr))
		if err != nil {
			t.Fatal(err)
		}
		defer tx.Close()
		train := make([]byte, 10*100+40)
		for i := range train {
			train[i] = byte(i / 100)
		}
		if _, _, err := tx.WriteMsgUDP(train, SegmentOOB(100), nil); err != nil {
			t.Skip("SKIP: no UDP_SEGMENT:", err)
		}
		ms := make([]ipv4.Message, 16)
		for i := range ms {
			ms[i].Buffers = [][]byte{make([]byte, 64<<10)}
			ms[i].OOB = GROOOB()
		}
		var got []byte
		var reads []int
		c.SetReadDeadline(time.Now().Add(2 * time.Second))
		for len(got) < len(train) {
			k, err := c.ReadBatch(ms)
			if err != nil {
				t.Fatal(err)
			}
			for _, m := range ms[:k] {
				got = append(got, m.Buffers[0][:m.N]...)
				reads = append(reads, GROSize(m.OOB[:m.NN]))
			}
		}
		if string(got) != string(train) {
			t.Errorf("gro %v: the bytes differ", gro)
		}
		if gro && (len(reads) != 1 || reads[0] != 100) || !gro && len(reads) != 11 {
			t.Errorf("gro %v: reads with datagram sizes %v", gro, reads)
		}
	}
}
