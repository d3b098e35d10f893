package nictest

import (
	"errors"
	"os"
	"runtime"
	"testing"
	"time"

	"github.com/tamadump/tamadump/debugnet"
	"github.com/tamadump/tamadump/netdump/client"
	"github.com/tamadump/tamadump/netdump/dumptest"
	"github.com/tamadump/tamadump/qemu"
)

// joinServer starts a netdumpd core on a user-space host and joins it to
// the host end of a QEMU NIC's link, frame by frame.
func joinServer(tb testing.TB, link *qemu.Link) *dumptest.Server {
	s := dumptest.NewServer(tb, 1500)
	s.Stack.Attach(func(f []byte) { link.Send(f) }) //nolint:errcheck // lost like on a wire
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		buf := make([]byte, qemu.MaxFrame)
		for {
			select {
			case <-stop:
				return
			default:
			}
			n, err := link.RecvInto(buf, 50*time.Millisecond)
			if err != nil {
				if errors.Is(err, os.ErrDeadlineExceeded) {
					continue
				}
				return
			}
			s.Stack.Inject(buf[:n])
		}
	}()
	tb.Cleanup(func() { close(stop); <-done })
	return s
}

// Netdump runs a whole netdump through nic, a driver on a QEMU device
// whose link ends in the netdumpd core, and checks the vmcore byte for
// byte. It returns the client's statistics.
func Netdump(tb testing.TB, nic debugnet.NIC, link *qemu.Link, size int) client.Stats {
	tb.Helper()
	s := joinServer(tb, link)
	segs := dumptest.Segments(size, 0.3, 17)
	core := dumptest.Body(tb, segs, "driver test")
	console := &dumptest.SyncBuffer{}
	c, err := client.New(nic, client.Config{
		Client: dumptest.ClientAddr, Server: dumptest.ServerPrefix.Addr(),
		Idle: runtime.Gosched, Console: console,
	})
	if err != nil {
		tb.Fatal(err)
	}
	if err := c.Dump(core, dumptest.KDH("driver test"), uint64(size>>20)); err != nil {
		tb.Fatalf("dump: %v\nconsole:\n%s", err, console)
	}
	s.Check(tb, dumptest.ClientAddr, 0, core, segs, "driver test")
	return c.Stats()
}

// BenchNetdump reports the goodput of whole dumps of size bytes through
// nic (compare with BenchTransmit's MB/s).
func BenchNetdump(b *testing.B, nic debugnet.NIC, link *qemu.Link, size int) {
	joinServer(b, link)
	segs := dumptest.Segments(size, 0, 17)
	core := dumptest.Body(b, segs, "bench")
	kdh := dumptest.KDH("bench")
	c, err := client.New(nic, client.Config{
		Client: dumptest.ClientAddr, Server: dumptest.ServerPrefix.Addr(), Idle: runtime.Gosched,
	})
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(core.Size())
	for b.Loop() {
		if err := c.Dump(core, kdh, uint64(size>>20)); err != nil {
			b.Fatal(err)
		}
	}
}
