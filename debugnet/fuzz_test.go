package debugnet

import (
	"net/netip"
	"testing"

	"gvisor.dev/gvisor/pkg/tcpip/header"

	"github.com/tamadump/tamadump/debugnet/linktest"
	"github.com/tamadump/tamadump/netdump/dumptest"
)

// FuzzInput feeds arbitrary frames to the endpoint's input path: nothing
// may panic, and only well-formed datagrams from the server to our port
// reach the handler.
func FuzzInput(f *testing.F) {
	link := linktest.New(ourMAC, 1500, 4, linktest.Faults{})
	var got int
	c, err := New(link, Config{Client: ourIP, Server: srvIP, ClientPort: 20024}, func(port uint16, p []byte) {
		if len(p) > 1500 {
			panic("payload longer than the MTU")
		}
		got++
	})
	if err != nil {
		f.Fatal(err)
	}
	c.arpTarget = c.server // as while resolving: ARP replies are parsed too
	f.Add([]byte{})
	f.Add(make([]byte, 14))
	var b [128]byte
	f.Add(append([]byte(nil), dumptest.Frame(b[:], gwMAC, ourMAC, srvIP, ourIP, 20023, 20024, []byte{0, 0, 0, 1})...))
	f.Add(append([]byte(nil), dumptest.Frame(b[:], gwMAC, ourMAC, srvIP, ourIP, 20023, 20024, nil)[:40]...))
	f.Add(append([]byte(nil), dumptest.ARPFrame(b[:], header.ARPRequest, gwMAC, [6]byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}, netip.MustParseAddr("127.0.7.9"), ourIP)...))
	f.Add(append([]byte(nil), dumptest.ARPFrame(b[:], header.ARPReply, gwMAC, ourMAC, srvIP, ourIP)...))
	f.Fuzz(func(t *testing.T, frame []byte) {
		c.input(frame)
	})
}
