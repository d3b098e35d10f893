package debugnet

import (
	"bytes"
	"encoding/binary"
	"errors"
	"testing"

	"gvisor.dev/gvisor/pkg/tcpip/header"

	"github.com/tamadump/tamadump/debugnet/linktest"
)

// refusingNIC refuses every third Transmit and keeps the UDP payloads of
// the frames it takes.
type refusingNIC struct {
	calls    int
	refuse   bool // refuse everything
	payloads [][]byte
}

var errFull = errors.New("ring full")

func (n *refusingNIC) Transmit(f []byte) error {
	n.calls++
	if n.refuse || n.calls%3 == 0 {
		return errFull
	}
	u := header.UDP(f[ethLen+ipLen:])
	n.payloads = append(n.payloads, append([]byte(nil), u.Payload()...))
	return nil
}
func (n *refusingNIC) Poll(func([]byte)) int { return 0 }
func (n *refusingNIC) MAC() [6]byte          { return ourMAC }
func (n *refusingNIC) MTU() int              { return 1500 }

func resolvedConn(t *testing.T, nic NIC) *Conn {
	c, err := New(nic, Config{Client: ourIP, Server: gwIP, ClientPort: 20024}, nil)
	if err != nil {
		t.Fatal(err)
	}
	c.resolved = true // as Connect leaves it
	return c
}

func TestBlast(t *testing.T) {
	nic := &refusingNIC{}
	c := resolvedConn(t, nic)
	const total = 10*1472 + 100
	st, err := c.Blast(9, total, nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	if st.Datagrams != 11 || st.Bytes != total || int(st.Datagrams) != len(nic.payloads) {
		t.Fatalf("stats %+v, %d datagrams taken", st, len(nic.payloads))
	}
	if st.Refused != uint64(nic.calls-len(nic.payloads)) || st.Refused == 0 {
		t.Fatalf("%d refused, the NIC refused %d", st.Refused, nic.calls-len(nic.payloads))
	}
	for i, p := range nic.payloads {
		if binary.BigEndian.Uint64(p) != uint64(i) {
			t.Fatalf("datagram %d numbered %d", i, binary.BigEndian.Uint64(p))
		}
	}
	if len(nic.payloads[10]) != 100 {
		t.Fatalf("last datagram %d bytes", len(nic.payloads[10]))
	}
}

func TestBlastStuckNIC(t *testing.T) {
	c := resolvedConn(t, &refusingNIC{refuse: true})
	st, err := c.Blast(9, 1<<20, nil, 0)
	if err != errFull || st.Datagrams != 0 || st.Refused != blastTries {
		t.Fatalf("stats %+v, err %v", st, err)
	}
}

// TestBlastFrom: with a source, each payload is the 24-byte head (its
// number first) and the next piece of the source, which starts again
// from its first byte when too little is left: sent in place at the
// source's bus addresses through a NIC that gathers, copied through one
// that does not.
func TestBlastFrom(t *testing.T) {
	src := make([]byte, 3000)
	for i := range src {
		src[i] = byte(i*7 + 1)
	}
	const total = 5 * 1472
	tail := 1472 - blastHead
	want := func(i int) []byte { // datagram i's tail: src restarts after 2 tails
		o := i % 2 * tail
		return src[o : o+tail]
	}
	for _, gathers := range []bool{false, true} {
		link := linktest.New(ourMAC, 1500, 64, linktest.Faults{})
		g := &gateway{link: link}
		link.Attach(g.input)
		var nic NIC = link
		gl := &gatherLink{Link: link, mem: make([]byte, 1000+len(src))}
		copy(gl.mem[1000:], src)
		if gathers {
			nic = gl
		}
		c, err := New(nic, Config{Client: ourIP, Server: srvIP, Gateway: gwIP, ClientPort: 20024, Polls: 10, ARPRetries: 2}, nil)
		if err != nil {
			t.Fatal(err)
		}
		if err := c.Connect(); err != nil {
			t.Fatal(err)
		}
		g.frames = nil
		st, err := c.Blast(9, total, src, 1000)
		if err != nil || st.Bytes != total || st.Datagrams != 5 {
			t.Fatalf("gathers %v: %+v, %v", gathers, st, err)
		}
		if gathers && len(gl.unsummed) != 5 {
			t.Errorf("%d datagrams read in place, want 5", len(gl.unsummed))
		}
		for i, f := range g.frames {
			p := header.UDP(header.IPv4(f[header.EthernetMinimumSize:]).Payload()).Payload()
			if binary.BigEndian.Uint64(p) != uint64(i) || !bytes.Equal(p[blastHead:], want(i)) {
				t.Errorf("gathers %v: datagram %d numbered %d, its tail from the source %v", gathers, i, binary.BigEndian.Uint64(p), bytes.Equal(p[blastHead:], want(i)))
			}
		}
	}
}
