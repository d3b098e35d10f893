package debugnet

import (
	"encoding/binary"
	"errors"
	"testing"

	"gvisor.dev/gvisor/pkg/tcpip/header"
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
	st, err := c.Blast(9, total)
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
	st, err := c.Blast(9, 1<<20)
	if err != errFull || st.Datagrams != 0 || st.Refused != blastTries {
		t.Fatalf("stats %+v, err %v", st, err)
	}
}
