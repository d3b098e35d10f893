package client

import (
	"runtime"
	"testing"
	"time"

	"github.com/tamadump/tamadump/debugnet/linktest"
	"github.com/tamadump/tamadump/netdump/dumptest"
	"github.com/tamadump/tamadump/netdump/elfcore"
	"github.com/tamadump/tamadump/netdump/wire"
)

var (
	serverPrefix = dumptest.ServerPrefix
	clientAddr   = dumptest.ClientAddr
	clientMAC    = dumptest.ClientMAC
)

// testbed is a client NIC joined frame by frame to the netdumpd core.
type testbed struct {
	*dumptest.Server
	link    *linktest.Link
	console *dumptest.SyncBuffer
}

func newTestbed(tb testing.TB, mtu int, f linktest.Faults) *testbed {
	tb.Helper()
	s := dumptest.NewServer(tb, mtu)
	link := linktest.New(clientMAC, mtu, 4096, f)
	link.Attach(s.Stack.Inject)
	s.Stack.Attach(link.Deliver)
	tb.Cleanup(link.Close)
	return &testbed{Server: s, link: link, console: &dumptest.SyncBuffer{}}
}

// config is a client configuration for the testbed: short timeouts so
// failures are quick, and a yielding idle so the host stack gets the CPU.
func (b *testbed) config() Config {
	return Config{
		Client: clientAddr, Server: serverPrefix.Addr(),
		Polls: 200, PollDelay: 500 * time.Microsecond, // 100 ms per timeout
		Retries: 40, // 4 s of silence: survives the 3 s outage
		Idle:    runtime.Gosched, Console: b.console,
	}
}

func (b *testbed) check(tb testing.TB, n int, core *elfcore.Core, segs []elfcore.Segment, msg string) {
	tb.Helper()
	b.Check(tb, clientAddr, n, core, segs, msg)
}

func segments(size int, zero float64, seed uint64) []elfcore.Segment {
	return dumptest.Segments(size, zero, seed)
}

func newBody(tb testing.TB, segs []elfcore.Segment, msg string) *elfcore.Core {
	return dumptest.Body(tb, segs, msg)
}

func newKDH(msg string) *wire.KernelDumpHeader { return dumptest.KDH(msg) }
