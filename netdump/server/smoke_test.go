package server

import (
	"bytes"
	"testing"

	"github.com/tamadump/tamadump/netdump/server/servertest"
	"github.com/tamadump/tamadump/netdump/wire"
)

func TestSmoke(t *testing.T) {
	h := newHarness(t, nil)
	c := h.client(1)
	if err := c.Herald(""); err != nil {
		t.Fatal(err)
	}
	core := pattern(1, 100000)
	if err := sendAll(c, core, 1448); err != nil {
		t.Fatal(err)
	}
	k := newKDH(uint64(len(core)), 0, 0)
	if err := c.Send(servertest.Msg{Type: wire.KDH, Payload: kdhBytes(&k)}); err != nil {
		t.Fatal(err)
	}
	if err := c.Finish(); err != nil {
		t.Fatal(err)
	}
	h.log.waitLog(t, "Completed dump", 1)
	if got := h.read("vmcore.127.0.0.1.0"); !bytes.Equal(got, core) {
		t.Fatalf("vmcore differs: %d bytes", len(got))
	}
	t.Logf("%s", h.read("info.127.0.0.1.0"))
	t.Logf("%s", h.log)
}
