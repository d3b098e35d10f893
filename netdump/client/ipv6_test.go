package client

import (
	"strings"
	"testing"
	"time"

	"github.com/tamadump/tamadump/debugnet/linktest"
	"github.com/tamadump/tamadump/netdump/dumptest"
	"github.com/tamadump/tamadump/netdump/ekcd"
)

// newTestbed6 is newTestbed with the server on IPv6.
func newTestbed6(tb testing.TB, mtu int, f linktest.Faults) *testbed {
	tb.Helper()
	s := dumptest.NewServer6(tb, mtu)
	link := linktest.New(clientMAC, mtu, 4096, f)
	link.Attach(s.Stack.Inject)
	s.Stack.Attach(link.Deliver)
	tb.Cleanup(link.Close)
	return &testbed{Server: s, link: link, console: &dumptest.SyncBuffer{}}
}

func (b *testbed) config6() Config {
	c := b.config()
	c.Client, c.Server = dumptest.ClientAddr6, dumptest.ServerPrefix6.Addr()
	return c
}

// The fault matrix over IPv6: every dump arrives byte-exact at netdumpd's
// core on gVisor's IPv6 (neighbour discovery both ways, checksums).
func TestFaultsIPv6(t *testing.T) {
	for _, tc := range []struct {
		name string
		f    linktest.Faults
	}{
		{"clean", linktest.Faults{}},
		{"loss-5%", linktest.Faults{Loss: 0.05}},
		{"duplication", linktest.Faults{Dup: 0.2}},
		{"reordering", linktest.Faults{Reorder: 0.2}},
		{"outage-3s", linktest.Faults{OutageAfter: 200, OutageFor: 3 * time.Second}},
		{"everything", linktest.Faults{Loss: 0.05, Dup: 0.05, Reorder: 0.05, Delay: time.Millisecond}},
	} {
		for _, mode := range []string{"window", "batch"} {
			t.Run(tc.name+"/"+mode, func(t *testing.T) {
				tc.f.Seed = 42
				b := newTestbed6(t, 1500, tc.f)
				cfg := b.config6()
				cfg.Batch = mode == "batch"
				segs := segments(512<<10, 0.2, 7)
				core := newBody(t, segs, "boom")
				c, err := New(b.link, cfg)
				if err != nil {
					t.Fatal(err)
				}
				if c.PayloadSize() != 1500-40-8-24 {
					t.Fatalf("payload %d on IPv6", c.PayloadSize())
				}
				if err := c.Dump(core, newKDH("boom"), 64); err != nil {
					t.Fatalf("dump: %v\n%s", err, b.console)
				}
				b.Check(t, dumptest.ClientAddr6, 0, core, segs, "boom")
				if !strings.Contains(b.console.String(), "netdumping to fd00:9::1 (") {
					t.Errorf("console:\n%s", b.console)
				}
			})
		}
	}
}

// Retarget between the families refits the payload: from IPv4 to IPv6 it
// shrinks by the 20 bytes of the longer header, to whole cipher blocks
// when encrypting; without allocating.
func TestRetargetFamilies(t *testing.T) {
	b := newTestbed(t, 1500, linktest.Faults{})
	cfg := b.config()
	cfg.Encrypt = encryptor(t, ekcd.AES256CBC)
	c, err := New(b.link, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if c.PayloadSize() != 1440 {
		t.Fatalf("IPv4 encrypted payload %d, want 1440", c.PayloadSize())
	}
	var rerr error
	n := testing.AllocsPerRun(10, func() {
		rerr = c.Retarget(dumptest.ClientAddr6, dumptest.ServerPrefix6.Addr(), dumptest.ServerPrefix6.Addr(), "")
	})
	if rerr != nil || c.PayloadSize() != 1424 {
		t.Fatalf("IPv6: %v, payload %d, want 1424", rerr, c.PayloadSize())
	}
	if n != 0 {
		t.Errorf("Retarget allocated %v times", n)
	}
	if err := c.Retarget(dumptest.ClientAddr6, clientAddr, netipZero(), ""); err == nil {
		t.Error("a mixed-family retarget was accepted")
	}
}
