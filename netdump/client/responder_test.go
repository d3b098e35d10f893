package client

import (
	"encoding/binary"
	"net/netip"
	"runtime"
	"runtime/debug"
	"strings"
	"testing"
	"time"

	"gvisor.dev/gvisor/pkg/tcpip/header"

	"github.com/tamadump/tamadump/debugnet/linktest"
	"github.com/tamadump/tamadump/netdump/dumptest"
	"github.com/tamadump/tamadump/netdump/wire"
)

func responderConfig() Config {
	return Config{Client: clientAddr, Server: serverPrefix.Addr(), Retries: 2}
}

// TestNoAllocation runs whole dumps with the garbage collector off and
// counts the process's heap allocations from start to FINISHED.
func TestNoAllocation(t *testing.T) {
	link, r := dumptest.NewResponder(1500)
	c, err := New(link, responderConfig())
	if err != nil {
		t.Fatal(err)
	}
	core := newBody(t, segments(2<<20, 0.5, 9), "boom")
	kdh := newKDH("boom")
	if err := c.Dump(core, kdh, 2); err != nil { // warm up: first-use paths
		t.Fatal(err)
	}
	defer debug.SetGCPercent(debug.SetGCPercent(-1))
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	for range 3 {
		if err := c.Dump(core, kdh, 2); err != nil {
			t.Fatal(err)
		}
	}
	runtime.ReadMemStats(&after)
	if d := after.Mallocs - before.Mallocs; d != 0 {
		t.Errorf("%d heap allocations during 3 dumps", d)
	}
	if r.Bytes == 0 {
		t.Fatal("responder saw no data")
	}
	// And per packet: one datagram out, its ACK in.
	link2, _ := dumptest.NewResponder(1500)
	c2, _ := New(link2, responderConfig())
	if err := c2.conn.Connect(); err != nil {
		t.Fatal(err)
	}
	c2.body = core
	c2.base, c2.next, c2.cwnd = 1, 1, 64
	n := testing.AllocsPerRun(1000, func() {
		if err := c2.exchange(wire.Header{Type: wire.VMCore, Offset: 4096, Len: uint32(c2.payload)}); err != nil {
			t.Fatal(err)
		}
	})
	if n != 0 {
		t.Errorf("%v allocations per acknowledged packet", n)
	}
}

// TestHostileFrames injects stray ACKs, foreign traffic and an ARP
// impostor while a dump runs: it still arrives byte-exact.
func TestHostileFrames(t *testing.T) {
	b := newTestbed(t, 1500, linktest.Faults{})
	stranger := [6]byte{0x02, 0, 0, 0, 9, 0x66}
	other := netip.MustParseAddr("127.0.9.66")
	var buf [128]byte
	var seq [4]byte
	inject := func(f []byte) { b.link.Deliver(append([]byte(nil), f...)) }
	done := make(chan struct{})
	go func() {
		for i := uint32(0); ; i++ {
			select {
			case <-done:
				return
			default:
			}
			binary.BigEndian.PutUint32(seq[:], 0xdead0000+i) // never sent
			inject(dumptest.Frame(buf[:], dumptest.ServerMAC, clientMAC, serverPrefix.Addr(), clientAddr, 20023, wire.ClientPort, seq[:]))
			binary.BigEndian.PutUint32(seq[:], i%400) // plausible, but from another host
			inject(dumptest.Frame(buf[:], stranger, clientMAC, other, clientAddr, 20023, wire.ClientPort, seq[:]))
			inject(dumptest.Frame(buf[:], dumptest.ServerMAC, stranger, serverPrefix.Addr(), other, 20023, wire.ClientPort, seq[:])) // for another MAC
			inject(dumptest.Frame(buf[:], dumptest.ServerMAC, clientMAC, serverPrefix.Addr(), clientAddr, 20023, 9999, seq[:]))      // another port
			inject(dumptest.ARPFrame(buf[:], header.ARPRequest, stranger, [6]byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}, clientAddr, serverPrefix.Addr()))
			inject(buf[:7]) // runt
			bad := dumptest.Frame(buf[:], dumptest.ServerMAC, clientMAC, serverPrefix.Addr(), clientAddr, 20023, wire.ClientPort, seq[:])
			bad[header.EthernetMinimumSize+10] ^= 0xff // IPv4 checksum broken
			inject(bad)
			time.Sleep(200 * time.Microsecond)
		}
	}()
	dumpOnce(t, b, b.config(), 1<<20, 0.2)
	close(done)
	if out := b.console.String(); !strings.Contains(out, "claims our address 127.0.9.2") {
		t.Errorf("no complaint about the ARP impostor:\n%s", out)
	}
}
