package client

import (
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/tamadump/tamadump/debugnet"
	"github.com/tamadump/tamadump/debugnet/linktest"
	"github.com/tamadump/tamadump/netdump/dumptest"
)

// benchDump dumps body over a fresh testbed per iteration.
func benchDump(b *testing.B, f linktest.Faults, mod func(*Config), size int, zero float64) {
	segs := segments(size, zero, 5)
	core := newBody(b, segs, "bench")
	b.SetBytes(core.Size())
	b.ReportAllocs()
	for b.Loop() {
		benchOnce(b, core, f, mod)
	}
}

// benchOnce times one dump of core over a fresh testbed (not timed) with
// the configuration mod changes.
func benchOnce(b *testing.B, core Body, f linktest.Faults, mod func(*Config)) (*Client, *testbed) {
	b.StopTimer()
	tb := newTestbed(b, 1500, f)
	cfg := tb.config()
	if mod != nil {
		mod(&cfg)
	}
	c, err := New(tb.link, cfg)
	if err != nil {
		b.Fatal(err)
	}
	b.StartTimer()
	if err := c.Dump(core, newKDH("bench"), 64); err != nil {
		b.Fatal(err)
	}
	return c, tb
}

// BenchmarkGoodput is a whole dump into the netdumpd core over the
// in-process link. Its MB/s is of the whole dump, ARP and HERALD
// included; vmcore-MB/s is the data over the transfer alone (Stats.Body),
// which is what BenchmarkRawBlast's delivered-MB/s compares with.
func BenchmarkGoodput(b *testing.B) {
	core := newBody(b, segments(16<<20, 0, 5), "bench")
	b.SetBytes(core.Size())
	b.ReportAllocs()
	var bytes, body float64
	for b.Loop() {
		c, _ := benchOnce(b, core, linktest.Faults{}, nil)
		bytes += float64(c.Stats().Bytes)
		body += float64(c.Stats().Body)
	}
	b.ReportMetric(bytes/body*1e3, "vmcore-MB/s")
}

// BenchmarkRawBlast sends the same bytes as datagrams of the same size
// through the same link to a UDP socket on the same host stack, with no
// protocol at all. Without flow control the host drops what it cannot
// take, so the measure is what arrived per second: the link's capacity
// (reported as delivered-MB/s; ns/op includes the receiver's idle wait).
func BenchmarkRawBlast(b *testing.B) {
	const size = 16 << 20
	var bytes, nanos float64
	for b.Loop() {
		b.StopTimer()
		tb := newTestbed(b, 1500, linktest.Faults{})
		sink, err := tb.Stack.ListenUDP(40000)
		if err != nil {
			b.Fatal(err)
		}
		conn, err := debugnet.New(tb.link, debugnet.Config{Client: clientAddr, Server: serverPrefix.Addr(), ClientPort: 40001, Idle: yield}, nil)
		if err != nil {
			b.Fatal(err)
		}
		if err := conn.Connect(); err != nil {
			b.Fatal(err)
		}
		per := conn.MaxPayload() - 24 // as a netdump message's payload
		n := (size + per - 1) / per
		type result struct {
			count int
			last  time.Time
		}
		got := make(chan result, 1)
		go func() {
			buf := make([]byte, 65536)
			var r result
			for r.count < n {
				sink.SetReadDeadline(time.Now().Add(200 * time.Millisecond))
				if _, _, err := sink.ReadFrom(buf); err != nil {
					break
				}
				r.count++
				r.last = time.Now()
			}
			got <- r
		}()
		start := time.Now()
		b.StartTimer()
		for i := 0; i < n; i++ {
			if err := conn.Send(40000, per+24); err != nil {
				b.Fatal(err)
			}
			if i%64 == 63 {
				yield() // let the host stack run, as the dump's polling does
			}
		}
		r := <-got
		b.StopTimer()
		sink.Close()
		bytes += float64(r.count * per)
		nanos += float64(r.last.Sub(start))
		b.StartTimer()
	}
	b.ReportMetric(bytes/nanos*1e3, "delivered-MB/s")
}

// BenchmarkRTT1ms compares the sliding window with FreeBSD's batches on a
// link with a 1 ms round trip to a server that answers at once, so the
// protocol's waiting is what is measured, not the host stack's CPU.
func BenchmarkRTT1ms(b *testing.B) {
	core := newBody(b, segments(8<<20, 0, 5), "bench")
	kdh := newKDH("bench")
	for _, mode := range []struct {
		name   string
		window int
		batch  bool
	}{{"window", 0, false}, {"window-fixed-64", 64, false}, {"batch", 0, true}} {
		b.Run(mode.name, func(b *testing.B) {
			link, _ := dumptest.NewResponder(1500)
			defer link.Close()
			link.SetFaults(linktest.Faults{Delay: 500 * time.Microsecond})
			cfg := responderConfig()
			cfg.Batch, cfg.Idle = mode.batch, yield
			if mode.window != 0 {
				cfg.Window, cfg.MaxWindow = mode.window, mode.window
			}
			c, err := New(link, cfg)
			if err != nil {
				b.Fatal(err)
			}
			b.SetBytes(core.Size())
			for b.Loop() {
				if err := c.Dump(core, kdh, 64); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(c.Stats().Retransmits), "retransmits/op")
			b.ReportMetric(float64(c.Stats().Window), "window")
		})
	}
}

// BenchmarkZeroPages dumps 256 MiB that is 90 % zero pages and 256 MiB of
// random bytes into the netdumpd core over the in-process link.
func BenchmarkZeroPages(b *testing.B) {
	for _, zero := range []float64{0.9, 0} {
		b.Run(fmt.Sprintf("zero-%.0f%%", zero*100), func(b *testing.B) {
			benchDump(b, linktest.Faults{}, nil, 256<<20, zero)
		})
	}
}

// BenchmarkClientCPU is the client's own cost per byte (scanning, copying,
// framing, checksums) against a server that answers at once.
func BenchmarkClientCPU(b *testing.B) {
	for _, zero := range []float64{0.9, 0} {
		b.Run(fmt.Sprintf("zero-%.0f%%", zero*100), func(b *testing.B) {
			core := newBody(b, segments(64<<20, zero, 11), "bench")
			kdh := newKDH("bench")
			link, _ := dumptest.NewResponder(1500)
			c, err := New(link, responderConfig())
			if err != nil {
				b.Fatal(err)
			}
			b.SetBytes(core.Size())
			b.ReportAllocs()
			for b.Loop() {
				if err := c.Dump(core, kdh, 64); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// lossyCases is the fault matrix: random loss p in both directions, alone
// and with duplicated and reordered frames.
var lossyCases = []struct {
	name string
	f    linktest.Faults
}{
	{"clean", linktest.Faults{}},
	{"loss-1%", linktest.Faults{Loss: 0.01}},
	{"loss-5%", linktest.Faults{Loss: 0.05}},
	{"loss-20%", linktest.Faults{Loss: 0.20}},
	{"loss-1%-dup-reorder", linktest.Faults{Loss: 0.01, Dup: 0.05, Reorder: 0.10}},
	{"loss-5%-dup-reorder", linktest.Faults{Loss: 0.05, Dup: 0.05, Reorder: 0.10}},
	{"loss-20%-dup-reorder", linktest.Faults{Loss: 0.20, Dup: 0.05, Reorder: 0.10}},
}

// BenchmarkLossyLink is the goodput of a whole dump into the netdumpd core
// over the in-process link with the fault matrix. Each lossy dump follows
// a clean one (untimed), and vs-clean is the median of the pairs' goodput
// ratios, which make bench prints against the (1−p)² target: one dump of
// three that waits out a timeout, or that the host stalls, moves a mean
// but not the median.
func BenchmarkLossyLink(b *testing.B) {
	for i, tc := range lossyCases {
		b.Run(tc.name, func(b *testing.B) {
			f := tc.f
			f.Seed = uint64(i + 1)
			benchDumpStats(b, f, nil, 8<<20, i > 0)
		})
	}
}

// BenchmarkCongestion dumps through a 10 MB/s bottleneck whose queue holds
// 32 frames, with the adaptive window and with a fixed window of 64 (which
// overflows that queue); drops/op counts the frames the queue dropped.
func BenchmarkCongestion(b *testing.B) {
	for _, mode := range []struct {
		name string
		mod  func(*Config)
	}{
		{"adaptive", nil},
		{"fixed-64", func(c *Config) { c.Window, c.MaxWindow = 64, 64 }},
	} {
		b.Run(mode.name, func(b *testing.B) {
			benchDumpStats(b, linktest.Faults{Rate: 10e6, Queue: 32, Seed: 1}, mode.mod, 4<<20, false)
		})
	}
}

// benchDumpStats is benchDump reporting retransmissions (and of them the
// probes and timeouts), the transfer's tail and the bottleneck's drops per
// dump; paired, each dump follows a clean one and vs-clean is the median
// of their time ratios.
func benchDumpStats(b *testing.B, f linktest.Faults, mod func(*Config), size int, paired bool) {
	core := newBody(b, segments(size, 0, 5), "bench")
	b.SetBytes(core.Size())
	b.ReportAllocs()
	cfg := func(cfg *Config) {
		cfg.Retries = 100
		if mod != nil {
			mod(cfg)
		}
	}
	var retx, probes, timeouts, tail, drops, n float64
	var ratios []float64
	for b.Loop() {
		var clean time.Duration
		if paired {
			b.StopTimer()
			c, _ := benchOnce(b, core, linktest.Faults{}, cfg)
			clean = c.Stats().Elapsed
			b.StartTimer()
		}
		c, tb := benchOnce(b, core, f, cfg)
		b.StopTimer()
		st := c.Stats()
		if paired {
			ratios = append(ratios, clean.Seconds()/st.Elapsed.Seconds())
		}
		retx += float64(st.Retransmits)
		probes += float64(st.Probes)
		timeouts += float64(st.Timeouts)
		tail += st.Tail.Seconds() * 1e3
		drops += float64(tb.link.Congested())
		n++
		if testing.Verbose() {
			b.Logf("%+v", st)
		}
		b.StartTimer()
	}
	b.ReportMetric(retx/n, "retransmits/op")
	b.ReportMetric(probes/n, "probes/op")
	b.ReportMetric(timeouts/n, "timeouts/op")
	b.ReportMetric(tail/n, "tail-ms")
	b.ReportMetric(drops/n, "drops/op")
	if len(ratios) > 0 {
		slices.Sort(ratios)
		b.ReportMetric(ratios[len(ratios)/2], "vs-clean")
	}
}
