package debugnet

import (
	"encoding/binary"
	"strings"
	"testing"

	"gvisor.dev/gvisor/pkg/tcpip/header"

	"github.com/tamadump/tamadump/debugnet/linktest"
)

// gatherLink is a Gatherer over a test link that reads a frame's tail
// only at Flush, as a device does some time after the frame was queued:
// a tail's bus address is an offset into mem, and the UDP checksum is
// completed over what it read where the frame asks. unsummed keeps each
// frame as it was before that, for the control.
type gatherLink struct {
	*linktest.Link
	mem      []byte
	queued   []gathered
	unsummed [][]byte
}

type gathered struct {
	head    []byte
	tail, n uint64
	sum     Offload
}

func (g *gatherLink) Queue(f []byte) error { return g.Transmit(f) }
func (g *gatherLink) Gathers() bool        { return true }

func (g *gatherLink) QueueGather(head []byte, tail uint64, n int, sum Offload) error {
	g.queued = append(g.queued, gathered{append([]byte(nil), head...), tail, uint64(n), sum})
	return nil
}

func (g *gatherLink) Flush() {
	for _, q := range g.queued {
		f := append(q.head, g.mem[q.tail:q.tail+q.n]...)
		g.unsummed = append(g.unsummed, append([]byte(nil), f...))
		// The field holds the pseudo-header's sum: the device sums it
		// with the rest and stores the complement there.
		at := int(q.sum.Start + q.sum.Offset)
		binary.BigEndian.PutUint16(f[at:], ^checksumOf(f[q.sum.Start:]))
		g.Transmit(f) //nolint:errcheck // the test link takes every frame
	}
	g.queued = g.queued[:0]
}

// framerLink is a Framer over a test link: one buffer, sent at
// QueueFrame.
type framerLink struct {
	*linktest.Link
	buf    [1514]byte
	frames int
}

func (f *framerLink) Queue(b []byte) error   { return f.Transmit(b) }
func (f *framerLink) Flush()                 {}
func (f *framerLink) Frame() ([]byte, error) { return f.buf[:], nil }
func (f *framerLink) QueueFrame(n int) error {
	f.frames++
	return f.Transmit(f.buf[:max(n, 60)])
}

// TestSendFromAndCopy: through a NIC that gathers, SendFrom leaves the
// tail where it is, and the datagram carries what the NIC read when it
// sent it, with a checksum that is right for that (the tail changes
// between the send and the NIC's read); the control: the frame as queued
// had only the pseudo-header's sum, which is wrong as it stands. Without
// a Gatherer, SendFrom is refused and SendCopy sends the tail as it was,
// checksummed, whether the head is even or odd (whose tail bytes are
// summed at the other parity), built in the buffer a NIC lends
// (debugnet.Framer) where it lends one.
func TestSendFromAndCopy(t *testing.T) {
	mem := make([]byte, 8192)
	for i := range mem {
		mem[i] = byte(i*7 + i>>8)
	}
	tail := mem[1001 : 1001+1400]
	valid := func(f []byte) bool {
		ip := header.IPv4(f[header.EthernetMinimumSize:])
		u := header.UDP(ip.Payload())
		return u.IsChecksumValid(ip.SourceAddress(), ip.DestinationAddress(), checksumOf(u.Payload()))
	}
	for _, kind := range []string{"gathers", "lends", "plain"} {
		gathers := kind == "gathers"
		link := linktest.New(ourMAC, 1500, 64, linktest.Faults{})
		g := &gateway{link: link}
		link.Attach(g.input)
		var nic NIC = link
		gl := &gatherLink{Link: link, mem: mem}
		fl := &framerLink{Link: link}
		switch kind {
		case "gathers":
			nic = gl
		case "lends":
			nic = fl
		}
		var console strings.Builder
		c, err := New(nic, Config{Client: ourIP, Server: srvIP, Gateway: gwIP, ClientPort: 20024, Polls: 10, ARPRetries: 2, Console: &console}, nil)
		if err != nil {
			t.Fatal(err)
		}
		if err := c.Connect(); err != nil {
			t.Fatalf("connect: %v\n%s", err, console.String())
		}
		if c.Gathers() != gathers {
			t.Fatalf("Gathers %v through a NIC that gathers: %v", c.Gathers(), gathers)
		}
		for _, n := range []int{24, 23} {
			g.frames, gl.unsummed, fl.frames = nil, nil, 0
			copy(c.Payload(), "a netdump header, 24 b.")
			was := string(tail)
			if gathers {
				if err := c.SendFrom(20023, n, tail, 1001); err != nil {
					t.Fatal(err)
				}
			} else if err := c.SendFrom(20023, n, tail, 1001); err != ErrNoGather {
				t.Fatalf("SendFrom without a Gatherer: %v", err)
			} else if err := c.SendCopy(20023, n, tail); err != nil {
				t.Fatal(err)
			}
			tail[n]++ // before the NIC reads it
			c.Flush()
			f := g.frames[len(g.frames)-1]
			p := header.UDP(header.IPv4(f[header.EthernetMinimumSize:]).Payload()).Payload()
			want := was
			if gathers {
				want = string(tail)
				if len(gl.unsummed) != 1 || valid(gl.unsummed[0]) {
					t.Errorf("head %d: the frame as queued has a complete checksum", n)
				}
			}
			if string(p[n:]) != want || !valid(f) {
				t.Errorf("%s, head %d: sent the tail as it was %v, now %v; checksum valid %v",
					kind, n, string(p[n:]) == was, string(p[n:]) == string(tail), valid(f))
			}
			if kind == "lends" && fl.frames == 0 {
				t.Errorf("head %d: not built in the lent buffer", n)
			}
		}
		// Send: the whole payload written to Payload, into the lent
		// buffer as it is summed.
		for _, n := range []int{1400, 23} {
			g.frames, fl.frames = nil, 0
			copy(c.Payload(), tail[:n])
			if err := c.Send(20023, n); err != nil {
				t.Fatal(err)
			}
			c.Flush()
			f := g.frames[len(g.frames)-1]
			p := header.UDP(header.IPv4(f[header.EthernetMinimumSize:]).Payload()).Payload()
			if string(p) != string(tail[:n]) || !valid(f) || kind == "lends" && fl.frames != 1 {
				t.Errorf("%s, Send of %d bytes: payload right %v, checksum valid %v, lent buffers used %d", kind, n, string(p) == string(tail[:n]), valid(f), fl.frames)
			}
		}
	}
}
