package client

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/tamadump/tamadump/debugnet/linktest"
)

// dumpOnce runs a whole dump on a testbed and checks the server's files.
func dumpOnce(t *testing.T, b *testbed, cfg Config, size int, zero float64) *Client {
	t.Helper()
	segs := segments(size, zero, 7)
	core := newBody(t, segs, "boom")
	c, err := New(b.link, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Dump(core, newKDH("boom"), 64); err != nil {
		t.Fatalf("dump: %v\nconsole:\n%s", err, b.console)
	}
	b.check(t, 0, core, segs, "boom")
	return c
}

func TestDumpEndToEnd(t *testing.T) {
	b := newTestbed(t, 1500, linktest.Faults{})
	cfg := b.config()
	cfg.Path = ""
	c := dumpOnce(t, b, cfg, 1<<20, 0.5)
	out := b.console.String()
	for _, want := range []string{"netdumping to 127.0.9.1 (", "Dumping 1 out of 64 MB:..10%..20%", "..100%", "netdump finished."} {
		if !strings.Contains(out, want) {
			t.Errorf("console lacks %q:\n%s", want, out)
		}
	}
	st := c.Stats()
	if st.ZeroBytes == 0 || st.Bytes+st.ZeroBytes < 1<<20 {
		t.Errorf("stats %+v: zero pages were not elided", st)
	}
	t.Logf("%+v", st)
}

// TestAckLists: by default the client asks for ACK lists and netdumpd
// acknowledges a window in fewer datagrams than messages; SingleAcks is
// FreeBSD's one ACK per message, the control that the count sees each.
// Over a lossy link both dumps arrive whole.
func TestAckLists(t *testing.T) {
	for _, f := range []linktest.Faults{{}, {Loss: 0.1, Seed: 5}} {
		for _, single := range []bool{false, true} {
			b := newTestbed(t, 1500, f)
			cfg := b.config()
			cfg.SingleAcks = single
			st := dumpOnce(t, b, cfg, 1<<20, 0).Stats()
			t.Logf("loss %v, single ACKs %v: %d messages, %d sent, %d ACK datagrams, %d taken from a repeat, %d spurious",
				f.Loss, single, st.Messages, st.Sent, st.AckDatagrams, st.Repeated, st.Spurious)
			switch {
			case f.Loss > 0:
			case single && (st.AckDatagrams < st.Messages || st.Repeated != 0):
				t.Errorf("single ACKs: %d messages acknowledged in %d datagrams, %d from repeats", st.Messages, st.AckDatagrams, st.Repeated)
			case !single && st.AckDatagrams >= st.Messages:
				t.Errorf("ACK lists: %d messages acknowledged in %d datagrams", st.Messages, st.AckDatagrams)
			}
		}
	}
}

func TestDumpModes(t *testing.T) {
	for _, tc := range []struct {
		name string
		mod  func(*Config)
		mtu  int
	}{
		{"batch", func(c *Config) { c.Batch = true }, 1500},
		{"send-zeros", func(c *Config) { c.SendZeros = true }, 1500},
		{"window-1", func(c *Config) { c.Window, c.MaxWindow = 1, 1 }, 1500},
		{"window-fixed-64", func(c *Config) { c.MaxWindow = 64 }, 1500},
		{"jumbo", func(c *Config) {}, 9000},
		{"small-mtu", func(c *Config) {}, 576},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := newTestbed(t, tc.mtu, linktest.Faults{})
			cfg := b.config()
			tc.mod(&cfg)
			dumpOnce(t, b, cfg, 256<<10, 0.3)
		})
	}
}

// TestFaults is the reliability matrix: every dump arrives byte-exact.
func TestFaults(t *testing.T) {
	for _, tc := range []struct {
		name string
		f    linktest.Faults
	}{
		{"loss-1%", linktest.Faults{Loss: 0.01}},
		{"loss-5%", linktest.Faults{Loss: 0.05}},
		{"loss-20%", linktest.Faults{Loss: 0.20}},
		{"duplication", linktest.Faults{Dup: 0.2}},
		{"reordering", linktest.Faults{Reorder: 0.2}},
		{"delay-1ms", linktest.Faults{Delay: 500 * time.Microsecond}},
		{"delay-20ms", linktest.Faults{Delay: 10 * time.Millisecond}},
		{"outage-3s", linktest.Faults{OutageAfter: 200, OutageFor: 3 * time.Second}},
		{"everything", linktest.Faults{Loss: 0.05, Dup: 0.05, Reorder: 0.05, Delay: time.Millisecond}},
	} {
		for _, mode := range []string{"window", "batch"} {
			t.Run(tc.name+"/"+mode, func(t *testing.T) {
				tc.f.Seed = 42
				b := newTestbed(t, 1500, tc.f)
				cfg := b.config()
				cfg.Batch = mode == "batch" // FreeBSD's scheme must survive the same faults
				c := dumpOnce(t, b, cfg, 512<<10, 0.2)
				t.Logf("%+v", c.Stats())
			})
		}
	}
}

func TestServerGoneMidDump(t *testing.T) {
	b := newTestbed(t, 1500, linktest.Faults{})
	cfg := b.config()
	cfg.Retries = 3 // 4 × 100 ms of silence
	segs := segments(4<<20, 0, 3)
	core := newBody(t, segs, "boom")
	c, err := New(b.link, cfg)
	if err != nil {
		t.Fatal(err)
	}
	// Cut the server off once the dump is under way.
	b.link.SetFaults(linktest.Faults{OutageAfter: 300, OutageFor: time.Hour})
	start := time.Now()
	err = c.Dump(core, newKDH("boom"), 64)
	if !errors.Is(err, ErrTimeout) {
		t.Fatalf("dump with the server gone: %v", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("gave up after %v; the budget is 400 ms of silence", d)
	}
	if out := b.console.String(); !strings.Contains(out, "giving up") {
		t.Errorf("console:\n%s", out)
	}
}

func TestNoServer(t *testing.T) {
	b := newTestbed(t, 1500, linktest.Faults{})
	b.link.Attach(nil) // nothing answers ARP
	cfg := b.config()
	cfg.Polls, cfg.ARPRetries = 20, 2
	c, err := New(b.link, cfg)
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	if err := c.Dump(newBody(t, segments(8192, 0, 1), "x"), newKDH("x"), 1); !errors.Is(err, ErrNoServer) {
		t.Fatalf("dump without a server: %v", err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("took %v", d)
	}
	out := b.console.String()
	if !strings.Contains(out, "(ARP retry)") || !strings.Contains(out, "failed to contact netdump server") {
		t.Errorf("console:\n%s", out)
	}
}

func TestHeraldUnanswered(t *testing.T) {
	b := newTestbed(t, 1500, linktest.Faults{})
	b.Stop() // the host answers ARP, but no netdumpd listens
	cfg := b.config()
	cfg.Retries = 2
	c, err := New(b.link, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Dump(newBody(t, segments(8192, 0, 1), "x"), newKDH("x"), 1); !errors.Is(err, ErrNoServer) {
		t.Fatalf("dump to a host without netdumpd: %v", err)
	}
	if out := b.console.String(); !strings.Contains(out, "HERALD to 127.0.9.1 not acknowledged") {
		t.Errorf("console:\n%s", out)
	}
}
