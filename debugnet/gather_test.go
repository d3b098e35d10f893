package debugnet

import (
	"strings"
	"testing"

	"gvisor.dev/gvisor/pkg/tcpip/header"

	"github.com/tamadump/tamadump/debugnet/linktest"
)

// gatherLink is a Gatherer over a test link: a tail's bus address is an
// offset into mem, and QueueGather sends head and tail as one frame. It
// completes checksums only if offload; sums records what it was asked.
type gatherLink struct {
	*linktest.Link
	mem     []byte
	offload bool
	sums    []Offload
}

func (g *gatherLink) Queue(f []byte) error { return g.Transmit(f) }
func (g *gatherLink) Flush()               {}
func (g *gatherLink) Gathers() bool        { return true }
func (g *gatherLink) Offloads() bool       { return g.offload }

func (g *gatherLink) QueueGather(head []byte, tail uint64, n int, sum Offload) error {
	g.sums = append(g.sums, sum)
	return g.Transmit(append(append([]byte(nil), head...), g.mem[tail:tail+uint64(n)]...))
}

// TestSendFromWithoutOffload: through a NIC that gathers but does not
// checksum, SendFrom sends the tail in place with the checksum it computed
// over it (a head of odd length, whose tail bytes would be summed at the
// wrong parity, is copied instead); through one that offloads, it leaves
// the checksum to the NIC (the control: the same frame's checksum is then
// only the pseudo-header's, invalid as it stands).
func TestSendFromWithoutOffload(t *testing.T) {
	for _, offload := range []bool{false, true} {
		link := linktest.New(ourMAC, 1500, 64, linktest.Faults{})
		g := &gateway{link: link}
		link.Attach(g.input)
		nic := &gatherLink{Link: link, mem: make([]byte, 8192), offload: offload}
		for i := range nic.mem {
			nic.mem[i] = byte(i*7 + i>>8)
		}
		var console strings.Builder
		c, err := New(nic, Config{Client: ourIP, Server: srvIP, Gateway: gwIP, ClientPort: 20024, Polls: 10, ARPRetries: 2, Console: &console}, nil)
		if err != nil {
			t.Fatal(err)
		}
		if err := c.Connect(); err != nil {
			t.Fatalf("connect: %v\n%s", err, console.String())
		}
		for _, n := range []int{24, 23} {
			g.frames, nic.sums = nil, nil
			copy(c.Payload(), "a netdump header, 24 b.")
			tail := nic.mem[1001 : 1001+1400]
			if err := c.SendFrom(20023, n, tail, 1001); err != nil {
				t.Fatal(err)
			}
			f := g.frames[0]
			ip := header.IPv4(f[header.EthernetMinimumSize:])
			u := header.UDP(ip.Payload())
			valid := u.IsChecksumValid(ip.SourceAddress(), ip.DestinationAddress(), checksumOf(u.Payload()))
			inPlace := len(nic.sums) == 1
			switch {
			case string(u.Payload()[n:]) != string(tail):
				t.Errorf("offload %v, head %d: the tail did not arrive", offload, n)
			case !offload && n%2 == 0 && (!inPlace || nic.sums[0] != Offload{} || !valid):
				t.Errorf("no offload, head %d: in place %v, offload asked %v, checksum valid %v", n, inPlace, nic.sums, valid)
			case !offload && n%2 != 0 && (inPlace || !valid):
				t.Errorf("no offload, odd head %d: in place %v, checksum valid %v", n, inPlace, valid)
			case offload && (!inPlace || nic.sums[0] == Offload{} || valid):
				t.Errorf("offload, head %d: in place %v, offload asked %v, checksum complete before the NIC %v", n, inPlace, nic.sums, valid)
			}
		}
	}
}
