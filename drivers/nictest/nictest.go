// Package nictest holds what the NIC drivers' tests share: test frames,
// the allocation check for the panic-time paths, and the transmit
// benchmark against a QEMU device.
package nictest

import (
	"bytes"
	"encoding/binary"
	"errors"
	"testing"
	"time"

	"github.com/tamadump/tamadump/debugnet"
	"github.com/tamadump/tamadump/netdump/dumptest"
	"github.com/tamadump/tamadump/qemu"
)

// Pattern is n pseudo-random bytes derived from seed, so frames of
// different seeds differ everywhere.
func Pattern(n int, seed byte) []byte {
	b := make([]byte, n)
	x := uint32(seed)*2654435761 + 1
	for i := range b {
		x = x*1664525 + 1013904223
		b[i] = byte(x >> 24)
	}
	return b
}

// Frame is an Ethernet frame of n bytes from src to dst with a Pattern
// payload.
func Frame(n int, dst, src [6]byte, seed byte) []byte {
	f := Pattern(n, seed)
	copy(f[0:], dst[:])
	copy(f[6:], src[:])
	binary.BigEndian.PutUint16(f[12:], 0x88b5) // local experimental EtherType
	return f
}

// NoAllocs fails t if f allocates: the allocations made with f on the
// stack over 1000 calls (one per call, or one in all, shows).
func NoAllocs(t *testing.T, name string, f func()) {
	t.Helper()
	f() // first use
	if n := dumptest.HeapAllocs(func() {
		for range 1000 {
			f()
		}
	}); n != 0 {
		t.Errorf("%s: %d allocations in 1000 calls", name, n)
	}
}

// BenchTransmit sends frame b.N times through nic and checks that the
// host side of link received every one; it reports frames/s and, through
// SetBytes, MB/s.
func BenchTransmit(b *testing.B, nic debugnet.NIC, link *qemu.Link, frame []byte) {
	got := make(chan int)
	stop := make(chan struct{})
	go func() {
		buf := make([]byte, qemu.MaxFrame)
		n := 0
		for {
			if _, err := link.RecvInto(buf, 100*time.Millisecond); err == nil {
				n++
				continue
			}
			select {
			case <-stop:
				got <- n
				return
			default:
			}
		}
	}()
	b.SetBytes(int64(len(frame)))
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if err := nic.Transmit(frame); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "frames/s")
	close(stop)
	if n := <-got; n != b.N {
		b.Fatalf("host received %d of %d frames", n, b.N)
	}
}

// Rig is a driver on a QEMU device and the host end of its link, with the
// frame checks the drivers' tests share.
type Rig struct {
	T    testing.TB
	NIC  debugnet.NIC
	Link *qemu.Link
}

// SendAndCheck transmits f and expects exactly want on the host link.
func (r Rig) SendAndCheck(f, want []byte) {
	r.T.Helper()
	if err := r.NIC.Transmit(f); err != nil {
		r.T.Fatalf("Transmit %d bytes: %v", len(f), err)
	}
	got, err := r.Link.Recv(5 * time.Second)
	if err != nil {
		r.T.Fatalf("host did not receive the %d-byte frame: %v", len(f), err)
	}
	if !bytes.Equal(got, want) {
		r.T.Fatalf("sent %d bytes, host got %d bytes:\n%x\nwant\n%x", len(f), len(got), got, want)
	}
}

// Poll collects n frames (copies), failing after timeout.
func (r Rig) Poll(n int, timeout time.Duration) [][]byte {
	r.T.Helper()
	var got [][]byte
	deadline := time.Now().Add(timeout)
	for len(got) < n {
		if r.NIC.Poll(func(f []byte) { got = append(got, append([]byte(nil), f...)) }) == 0 {
			if time.Now().After(deadline) {
				r.T.Fatalf("polled %d of %d frames in %v", len(got), n, timeout)
			}
			time.Sleep(200 * time.Microsecond)
		}
	}
	return got
}

// Inject sends frames from the host and checks the driver receives them
// byte-exact and in order, and nothing else.
func (r Rig) Inject(frames ...[]byte) {
	r.T.Helper()
	for _, f := range frames {
		if err := r.Link.Send(f); err != nil {
			r.T.Fatal(err)
		}
	}
	got := r.Poll(len(frames), 5*time.Second)
	for i := range frames {
		if !bytes.Equal(got[i], frames[i]) {
			r.T.Fatalf("frame %d: received %d bytes %x, want %d bytes %x", i, len(got[i]), got[i], len(frames[i]), frames[i])
		}
	}
	time.Sleep(5 * time.Millisecond) // anything extra has time to arrive
	if extra := r.NIC.Poll(func([]byte) {}); extra != 0 {
		r.T.Fatalf("%d unexpected frames", extra)
	}
}

// Wrap goes round the rings several times: 3·ring transmitted frames
// checked one by one, then four rounds of perRound frames (growing by
// step bytes) injected while polling. out and in make frames from and to
// the driver's MAC.
func (r Rig) Wrap(ring, perRound, step int, out, in func(n int, seed byte) []byte) {
	r.T.Helper()
	for i := 0; i < 3*ring; i++ {
		f := out(60+i*15%1455, byte(i)) // 60 to 1514 bytes
		r.SendAndCheck(f, f)
	}
	for round := 0; round < 4; round++ {
		var fs [][]byte
		for i := 0; i < perRound; i++ {
			fs = append(fs, in(60+i*step, byte(round*50+i)))
		}
		// The socket queue holds few datagrams: send while polling.
		done := make(chan error, 1)
		go func() {
			for _, f := range fs {
				if err := r.Link.Send(f); err != nil {
					done <- err
					return
				}
			}
			done <- nil
		}()
		got := r.Poll(len(fs), 10*time.Second)
		if err := <-done; err != nil {
			r.T.Fatal(err)
		}
		for i := range fs {
			if !bytes.Equal(got[i], fs[i]) {
				r.T.Fatalf("round %d frame %d differs", round, i)
			}
		}
	}
}

// FillTX transmits into a transmitter the test has stopped behind the
// driver's back: Transmit must fail with full (not hang) once the ring's
// ring slots are taken, and nothing may reach the link.
func (r Rig) FillTX(ring int, full error, out func(n int, seed byte) []byte) {
	r.T.Helper()
	var err error
	n := 0
	for ; n < 2*ring && err == nil; n++ {
		err = r.NIC.Transmit(out(100, byte(n)))
	}
	if !errors.Is(err, full) || n != ring {
		r.T.Fatalf("after %d frames with the transmitter stopped: %v", n, err)
	}
	if r.Link.Drain(50*time.Millisecond) != 0 {
		r.T.Fatal("frames left with the transmitter stopped")
	}
}

// Sizes are the frame sizes the drivers' tests send: the Ethernet minimum
// and maximum and the edges in between.
var Sizes = []int{60, 61, 64, 65, 100, 127, 128, 255, 256, 511, 512, 777, 1000, 1023, 1024, 1499, 1500, 1513, 1514}

// SendSizes transmits a frame of each of Sizes and a short one, which
// must leave zero-padded to the Ethernet minimum.
func (r Rig) SendSizes(out func(n int, seed byte) []byte) {
	r.T.Helper()
	for i, n := range Sizes {
		f := out(n, byte(i))
		r.SendAndCheck(f, f)
	}
	f := out(42, 9)
	r.SendAndCheck(f, append(append([]byte(nil), f...), make([]byte, 18)...))
}
