package server

import (
	"net"
	"net/netip"
	"sync"
	"testing"

	"github.com/tamadump/tamadump/netdump/server/servertest"
	"github.com/tamadump/tamadump/netdump/wire"
)

// TestEnded: a completed dump and one cut short each report their end
// once, with the files' names and, when one arrived, the header.
func TestEnded(t *testing.T) {
	var mu sync.Mutex
	var ended []Ended
	h := newHarness(t, func(c *Config) {
		c.Listen = netip.MustParseAddrPort("127.0.23.1:0")
		c.Ended = func(e Ended) { mu.Lock(); ended = append(ended, e); mu.Unlock() }
	})
	sock, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 23, 2), Port: int(h.ackPort)})
	if err != nil {
		t.Fatal(err)
	}
	defer sock.Close()
	c := servertest.New(servertest.UDP(sock), h.srv.Addr())

	core := pattern(3, 4*page)
	k := newKDH(uint64(len(core)), wire.CompressNone, page)
	if err := c.Herald(""); err != nil {
		t.Fatal(err)
	}
	if err := c.Send(servertest.Msg{Type: wire.EKCDKey, Payload: pattern(4, page)}); err != nil {
		t.Fatal(err)
	}
	if err := sendAll(c, core, 1448); err != nil {
		t.Fatal(err)
	}
	if err := c.Send(servertest.Msg{Type: wire.KDH, Payload: kdhBytes(&k)}); err != nil {
		t.Fatal(err)
	}
	if err := c.Finish(); err != nil {
		t.Fatal(err)
	}
	h.log.waitLog(t, "Completed dump", 1)

	// The next dump stops after its first data: the server's Close ends
	// it as timed out.
	if err := c.Herald(""); err != nil {
		t.Fatal(err)
	}
	if err := sendAll(c, core[:page], 1448); err != nil {
		t.Fatal(err)
	}
	h.close()

	mu.Lock()
	defer mu.Unlock()
	if len(ended) != 2 {
		t.Fatalf("%d ends reported: %+v", len(ended), ended)
	}
	e := ended[0]
	want := Ended{Reason: "success", Client: netip.MustParseAddr("127.0.23.2"), Host: "127.0.23.2", Index: 0,
		Dir: h.dir, Info: "info.127.0.23.2.0", Core: "vmcore_encrypted.127.0.23.2.0", Key: "key.127.0.23.2.0"}
	got := e
	got.KDH = nil
	if got != want {
		t.Errorf("completed dump: %+v\nwant %+v", got, want)
	}
	if e.KDH == nil || string(wire.Text(e.KDH.PanicString[:])) != "page fault" || e.KDH.DumpKeySize != page {
		t.Errorf("completed dump's header: %+v", e.KDH)
	}
	e = ended[1]
	if e.Reason != "timeout" || e.Index != 1 || e.Core != "vmcore.127.0.23.2.1" || e.Key != "" || e.KDH != nil {
		t.Errorf("cut dump: %+v", e)
	}
}
