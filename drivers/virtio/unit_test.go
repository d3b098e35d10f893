package virtio

import (
	"bytes"
	"encoding/binary"
	"errors"
	"github.com/tamadump/tamadump/debugnet"
	"testing"

	"github.com/tamadump/tamadump/drivers/nictest"
	"github.com/tamadump/tamadump/mbufpool"
)

var fakes = []struct {
	name    string
	v2      bool
	offered uint64
	hdrLen  int
	chain   bool
}{
	{"v2", true, featMAC | featStatus | featVersion1 | 1<<15 | 1<<29, modernHdrLen, false},
	{"v1", false, featMAC | featStatus | featAnyLayout | 1<<15, legacyHdrLen, false},
	{"v1-split-header", false, featMAC, legacyHdrLen, true},
}

// newFakeNIC puts the driver on dev, with rings and a pool in its memory.
func newFakeNIC(t testing.TB, dev *fakeMMIO, opt Options) (*NIC, *mbufpool.Pool, error) {
	t.Helper()
	rings, rest, err := dev.dma().Carve(RingBytes(256), 4096)
	if err != nil {
		t.Fatal(err)
	}
	pool, err := mbufpool.New(rest, 2048)
	if err != nil {
		t.Fatal(err)
	}
	nic, err := NewMMIO(dev, fakeRegs, rings, pool, opt)
	return nic, pool, err
}

func mustFakeNIC(t testing.TB, dev *fakeMMIO, opt Options) *NIC {
	t.Helper()
	nic, _, err := newFakeNIC(t, dev, opt)
	if err != nil {
		t.Fatal(err)
	}
	return nic
}

func (f *fakeMMIO) expectSent(t *testing.T, want []byte) {
	t.Helper()
	if got := f.last[:f.lastLen]; !bytes.Equal(got, want) {
		t.Fatalf("device sent %d bytes %x, want %d bytes %x", len(got), got, len(want), want)
	}
}

func TestFakeDevice(t *testing.T) {
	for _, c := range fakes {
		t.Run(c.name, func(t *testing.T) {
			dev := newFakeMMIO(c.v2, c.offered)
			nic := mustFakeNIC(t, dev, Options{QueueSize: 16})
			if nic.MAC() != dev.mac || nic.MTU() != 1500 || !nic.LinkUp() {
				t.Fatalf("MAC %x MTU %d link %v", nic.MAC(), nic.MTU(), nic.LinkUp())
			}
			if nic.HeaderLen() != c.hdrLen || nic.chain != c.chain {
				t.Fatalf("header %d chain %v", nic.HeaderLen(), nic.chain)
			}
			want := uint64(featMAC | featStatus | featVersion1 | featAnyLayout)
			if dev.driverFeat != c.offered&want {
				t.Fatalf("driver features %#x, offered %#x", dev.driverFeat, c.offered)
			}
			st := uint32(statusAck | statusDriver | statusDriverOK)
			if c.v2 {
				st |= statusFeaturesOK
			}
			if dev.stat != st {
				t.Fatalf("status %#x", dev.stat)
			}
			if dev.queues[0].num != 16 || dev.queues[1].num != 16 {
				t.Fatalf("queue sizes %d, %d", dev.queues[0].num, dev.queues[1].num)
			}

			// Both rings round several times, one frame at a time.
			slots := len(nic.txBuf)
			for i := range 3*slots + 3 {
				f := nictest.Frame(60+i*41%1455, hostMAC, nic.MAC(), byte(i))
				if err := nic.Transmit(f); err != nil {
					t.Fatal(err)
				}
				dev.expectSent(t, f)
				in := nictest.Frame(14+i*43%1501, nic.MAC(), hostMAC, byte(i))
				if !dev.inject(in) {
					t.Fatalf("frame %d: no RX buffer", i)
				}
				var got []byte
				if n := nic.Poll(func(f []byte) { got = append(got, f...) }); n != 1 || !bytes.Equal(got, in) {
					t.Fatalf("frame %d: polled %d frames, %x, want %x", i, n, got, in)
				}
			}
			// Short frames are padded.
			if err := nic.Transmit(make([]byte, 1)); err != nil {
				t.Fatal(err)
			}
			dev.expectSent(t, make([]byte, 60))

			// A full RX ring: every buffer filled, all polled in order.
			rxSlots := len(nic.rxBuf)
			for i := range rxSlots {
				if !dev.inject([]byte{byte(i)}) {
					t.Fatalf("RX buffer %d of %d missing", i, rxSlots)
				}
			}
			if dev.inject([]byte{1}) {
				t.Fatal("more RX buffers than slots")
			}
			i := 0
			nic.Poll(func(f []byte) {
				if len(f) != 1 || f[0] != byte(i) {
					t.Errorf("frame %d is %x", i, f)
				}
				i++
			})
			if i != rxSlots {
				t.Fatalf("polled %d of %d", i, rxSlots)
			}
		})
	}
}

// TestIndexWrap runs the free-running 16-bit avail and used indexes of
// both queues past 65535.
func TestIndexWrap(t *testing.T) {
	dev := newFakeMMIO(true, featMAC|featVersion1)
	nic := mustFakeNIC(t, dev, Options{QueueSize: 8})
	f := nictest.Frame(60, hostMAC, nic.MAC(), 1)
	for i := range 1<<16 + 100 {
		if err := nic.Transmit(f); err != nil {
			t.Fatalf("frame %d: %v", i, err)
		}
		if !dev.inject(f[:20+i%7]) {
			t.Fatalf("frame %d: no RX buffer", i)
		}
		if n := nic.Poll(func(g []byte) {
			if len(g) != 20+i%7 {
				t.Fatalf("frame %d: %d bytes", i, len(g))
			}
		}); n != 1 {
			t.Fatalf("frame %d: polled %d", i, n)
		}
	}
	if dev.sent != 1<<16+100 || nic.tx.lastUsed != 99 || nic.rx.nextAvail != 8+100 { // mod 1<<16; the last TX is reclaimed by the next Transmit
		t.Fatalf("sent %d, TX used %d, RX avail %d", dev.sent, nic.tx.lastUsed, nic.rx.nextAvail)
	}
}

// TestTXStall: a device that stops transmitting fills the ring; Transmit
// fails after a bounded wait, and the notify it sends on a full ring gets
// a device that missed notifications going again.
func TestTXStall(t *testing.T) {
	dev := newFakeMMIO(true, featMAC|featVersion1)
	nic := mustFakeNIC(t, dev, Options{QueueSize: 8})
	dev.stopTX = true
	var err error
	n := 0
	for ; n < 20 && err == nil; n++ {
		err = nic.Transmit(nictest.Frame(100, hostMAC, nic.MAC(), byte(n)))
	}
	slots := nic.slots(&nic.tx) // 4: each takes a frame's and a tail's descriptor
	if !errors.Is(err, ErrTXFull) || n != slots+1 {
		t.Fatalf("after %d frames with TX stuck: %v", n, err)
	}
	dev.stopTX = false
	f := nictest.Frame(200, hostMAC, nic.MAC(), 1)
	if err := nic.Transmit(f); err != nil {
		t.Fatal(err)
	}
	// The kick sent the queued frames; the new one went with a notify of
	// its own.
	if dev.sent != slots+1 {
		t.Fatalf("device sent %d frames, want %d", dev.sent, slots+1)
	}
	dev.expectSent(t, f)
}

// TestNoNotify: Flush and Poll notify only a device that asks for it
// (NO_NOTIFY clear in used.flags); the same calls with the flag clear are
// the control.
func TestNoNotify(t *testing.T) {
	for _, c := range fakes {
		t.Run(c.name, func(t *testing.T) {
			dev := newFakeMMIO(c.v2, c.offered)
			nic := mustFakeNIC(t, dev, Options{QueueSize: 8})
			for _, busy := range []bool{true, false} {
				dev.setNoNotify(queueTX, busy)
				dev.setNoNotify(queueRX, busy)
				before := dev.notified
				if err := nic.Queue(nictest.Frame(100, hostMAC, nic.MAC(), 1)); err != nil {
					t.Fatal(err)
				}
				nic.Flush()
				if !dev.inject([]byte("frame")) {
					t.Fatal("no RX buffer")
				}
				if n := nic.Poll(func([]byte) {}); n != 1 {
					t.Fatalf("polled %d frames", n)
				}
				tx, rx := dev.notified[queueTX]-before[queueTX], dev.notified[queueRX]-before[queueRX]
				if want := map[bool]int{true: 0, false: 1}[busy]; tx != want || rx != want {
					t.Errorf("NO_NOTIFY %v: %d TX and %d RX notifications, want %d each", busy, tx, rx, want)
				}
			}
		})
	}
}

// TestGather: with checksum offload offered, QueueGather sends head and
// the tail it points at as one frame whose header asks for the checksum
// where Offload says, ring after ring; without it, the NIC does not
// gather and refuses to (the control: in place needs the device to
// checksum what it reads).
func TestGather(t *testing.T) {
	for _, c := range fakes {
		t.Run(c.name, func(t *testing.T) {
			dev := newFakeMMIO(c.v2, c.offered|featCSUM)
			nic := mustFakeNIC(t, dev, Options{QueueSize: 8})
			if !nic.Gathers() {
				t.Fatal("checksum offload offered, Gathers false")
			}
			tailAddr := dev.base + 3<<20
			for i := range 20 {
				head := nictest.Frame(60, hostMAC, nic.MAC(), byte(i))
				tail := nictest.Pattern(100+i, byte(i))
				copy(dev.at(tailAddr, len(tail)), tail)
				if err := nic.QueueGather(head, tailAddr, len(tail), debugnet.Offload{Start: 34, Offset: 6}); err != nil {
					t.Fatalf("frame %d: %v", i, err)
				}
				nic.Flush()
				dev.expectSent(t, append(head, tail...))
				if h := dev.lastHdr; h[0] != hdrNeedsCsum || binary.LittleEndian.Uint16(h[6:]) != 34 || binary.LittleEndian.Uint16(h[8:]) != 6 {
					t.Fatalf("frame %d: virtio_net_hdr %x", i, h[:c.hdrLen])
				}
			}
			nic = mustFakeNIC(t, newFakeMMIO(c.v2, c.offered), Options{QueueSize: 8})
			if nic.Gathers() {
				t.Fatal("no checksum offload offered, Gathers true")
			}
			if err := nic.QueueGather(make([]byte, 60), tailAddr, 10, debugnet.Offload{Start: 34, Offset: 6}); err != debugnet.ErrNoGather {
				t.Fatalf("a gather asked of a device without offload: %v", err)
			}
		})
	}
}

// TestFrame: a frame built in the buffer Frame lends goes out as it is,
// ring after ring, a short one padded; Frame lends the same buffer until
// QueueFrame takes it, and QueueFrame with nothing lent is refused.
func TestFrame(t *testing.T) {
	for _, c := range fakes {
		t.Run(c.name, func(t *testing.T) {
			dev := newFakeMMIO(c.v2, c.offered)
			nic := mustFakeNIC(t, dev, Options{QueueSize: 8})
			if err := nic.QueueFrame(60); err != ErrFrameSize {
				t.Fatalf("QueueFrame with no buffer lent: %v", err)
			}
			for i := range 3*len(nic.txBuf) + 1 {
				f := nictest.Frame(14+i*97%1501, hostMAC, nic.MAC(), byte(i))
				b, err := nic.Frame()
				if err != nil {
					t.Fatal(err)
				}
				if again, _ := nic.Frame(); &again[0] != &b[0] {
					t.Fatalf("frame %d: a second Frame lent another buffer", i)
				}
				copy(b, f)
				if err := nic.QueueFrame(len(f)); err != nil {
					t.Fatal(err)
				}
				nic.Flush()
				if len(f) < 60 {
					f = append(f, make([]byte, 60-len(f))...)
				}
				dev.expectSent(t, f)
			}
		})
	}
}

// TestUsedGarbage: used elements naming descriptors the device does not
// hold (out of range, odd in split-header mode, already returned) are
// skipped without handing a buffer to the device twice.
func TestUsedGarbage(t *testing.T) {
	for _, c := range fakes {
		t.Run(c.name, func(t *testing.T) {
			dev := newFakeMMIO(c.v2, c.offered)
			nic := mustFakeNIC(t, dev, Options{QueueSize: 8})
			q, _ := dev.rings(queueRX) // v1: computes the ring addresses
			for _, id := range []uint16{8, 1000, 1, 1} {
				dev.use(q, id, 100)
			}
			if !dev.inject([]byte("frame")) {
				t.Fatal("no RX buffer")
			}
			// Id 1 is a buffer the device holds (in split-header mode it
			// is odd, not a chain head): it counts once, its repeat not.
			want := 2
			if c.chain {
				want = 1
			}
			if n := nic.Poll(func([]byte) {}); n != want {
				t.Fatalf("polled %d frames, want %d", n, want)
			}
			if got := int(nic.rx.nextAvail); got != len(nic.rxBuf)+want {
				t.Fatalf("avail.idx %d after %d buffers and %d returned", got, len(nic.rxBuf), want)
			}
			// The driver is consistent again after a Reset.
			if err := nic.Reset(); err != nil {
				t.Fatal(err)
			}
			if !dev.inject([]byte("again")) || nic.Poll(func([]byte) {}) != 1 {
				t.Fatal("no frame after Reset")
			}
		})
	}
}

// A Reset that fails after New took its buffers (the device's status no
// longer clears on the second reset) gives them all back; the high-water
// mark shows they had been taken.
func TestResetFailsReleasesBuffers(t *testing.T) {
	dev := newFakeMMIO(true, featMAC|featVersion1)
	dev.stuckAfter = 1
	_, pool, err := newFakeNIC(t, dev, Options{})
	if !errors.Is(err, ErrResetTimeout) {
		t.Fatalf("New with a reset that never completes: %v", err)
	}
	if st := pool.Stats(); st.HighWater == 0 || st.InUse != 0 {
		t.Fatalf("pool after the failed reset: %+v (want buffers taken, none kept)", st)
	}
}

func TestNegotiation(t *testing.T) {
	cases := []struct {
		name    string
		v2      bool
		offered uint64
		opt     Options
		err     error
	}{
		{"no VERSION_1 on v2", true, featMAC, Options{}, ErrFeatures},
		{"no MAC", true, featVersion1, Options{}, ErrFeatures},
		{"no MAC legacy", false, featAnyLayout, Options{}, ErrFeatures},
		{"queue size 3", true, featMAC | featVersion1, Options{QueueSize: 3}, nil},
	}
	for _, c := range cases {
		dev := newFakeMMIO(c.v2, c.offered)
		nic, pool, err := newFakeNIC(t, dev, c.opt)
		if err == nil || c.err != nil && !errors.Is(err, c.err) {
			t.Errorf("%s: %v, %v", c.name, nic, err)
		}
		if pool.Stats().InUse != 0 {
			t.Errorf("%s: %d buffers kept after failing", c.name, pool.Stats().InUse)
		}
	}

	// Sizes are clipped to the device's maximum.
	dev := newFakeMMIO(true, featMAC|featVersion1)
	dev.maxQueue = 32
	nic, pool, err := newFakeNIC(t, dev, Options{})
	// (TX slots take two descriptors: a frame and a tail sent in place.)
	if err != nil || nic.rx.size != 32 || pool.Stats().InUse != 32+16 {
		t.Fatalf("max 32: %v, size %d, %d buffers", err, nic.rx.size, pool.Stats().InUse)
	}

	// A device that withdraws a feature fails Reset, which marks it FAILED.
	dev.offered = featVersion1
	if err := nic.Reset(); !errors.Is(err, ErrFeatures) || dev.stat&statusFailed == 0 {
		t.Fatalf("Reset after the MAC feature went: %v, status %#x", err, dev.stat)
	}

	// Pools with small buffers are refused.
	dev = newFakeMMIO(true, featMAC|featVersion1)
	small, err := mbufpool.New(dev.dma(), 1024)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := NewMMIO(dev, fakeRegs, dev.dma(), small, Options{}); err == nil {
		t.Fatal("1024-byte pool buffers accepted")
	}
	if _, err := NewMMIO(newFakeMMIO(true, 0), fakeRegs+MMIOSlotSize, dev.dma(), small, Options{}); !errors.Is(err, ErrNoDevice) {
		t.Fatalf("no device: %v", err)
	}
}

// TestNoAllocs checks the panic-time paths allocate nothing: Transmit,
// Poll (with a frame each time) and Reset, over the fake device so the
// count is the driver's alone.
func TestNoAllocs(t *testing.T) {
	for _, c := range fakes {
		t.Run(c.name, func(t *testing.T) {
			dev := newFakeMMIO(c.v2, c.offered)
			nic := mustFakeNIC(t, dev, Options{})
			frame := nictest.Pattern(1514, 3)
			sum := 0
			fn := func(f []byte) { sum += len(f) }
			cases := []struct {
				name string
				f    func()
			}{
				{"Transmit", func() {
					if err := nic.Transmit(frame); err != nil {
						t.Fatal(err)
					}
				}},
				{"Poll", func() {
					if !dev.inject(frame[:200]) {
						t.Fatal("no RX buffer")
					}
					if nic.Poll(fn) != 1 {
						t.Fatal("no frame polled")
					}
				}},
				{"Reset", func() {
					if err := nic.Reset(); err != nil {
						t.Fatal(err)
					}
				}},
			}
			for _, c := range cases {
				nictest.NoAllocs(t, c.name, c.f)
			}
		})
	}
}
