package e1000_test

import (
	"bytes"
	"errors"
	"testing"

	"github.com/tamadump/tamadump/drivers/bus"
	"github.com/tamadump/tamadump/drivers/e1000"
	"github.com/tamadump/tamadump/drivers/nictest"
	"github.com/tamadump/tamadump/mbufpool"
)

var testMAC = [6]byte{0x52, 0x54, 0x00, 0x12, 0x34, 0x56}

// newNIC builds the driver over DMA memory: rings first, then the pool.
func newNIC(t testing.TB, mmio bus.MMIO, regs uint64, mem bus.DMA) *e1000.NIC {
	t.Helper()
	rings, rest, err := mem.Carve(e1000.RingBytes+128, 128)
	if err != nil {
		t.Fatal(err)
	}
	bufs, _, err := rest.Carve(e1000.BuffersNeeded*e1000.BufSize+mbufpool.Align, mbufpool.Align)
	if err != nil {
		t.Fatal(err)
	}
	pool, err := mbufpool.New(bufs, e1000.BufSize)
	if err != nil {
		t.Fatal(err)
	}
	nic, err := e1000.New(mmio, regs, rings, pool)
	if err != nil {
		t.Fatal(err)
	}
	return nic
}

func TestFakeRingsWrap(t *testing.T) {
	dev := newFakeDev(testMAC)
	nic := newNIC(t, dev, fakeRegs, dev.dma())
	if nic.MAC() != testMAC || nic.MTU() != 1500 {
		t.Fatalf("MAC %x MTU %d", nic.MAC(), nic.MTU())
	}
	for i := 0; i < 3*e1000.RingSize+5; i++ {
		f := nictest.Pattern(60+i*13%1455, byte(i))
		if err := nic.Transmit(f); err != nil {
			t.Fatalf("frame %d: %v", i, err)
		}
		if !bytes.Equal(dev.last[:dev.lastLen], f) {
			t.Fatalf("frame %d sent as %x", i, dev.last[:dev.lastLen])
		}
	}
	// A short frame goes out zero-padded to 60 bytes.
	if err := nic.Transmit([]byte{1, 2, 3}); err != nil {
		t.Fatal(err)
	}
	if want := append([]byte{1, 2, 3}, make([]byte, 57)...); !bytes.Equal(dev.last[:dev.lastLen], want) {
		t.Fatalf("short frame sent as %x", dev.last[:dev.lastLen])
	}
	for _, l := range []int{0, 1515} {
		if err := nic.Transmit(make([]byte, l)); !errors.Is(err, e1000.ErrFrameSize) {
			t.Errorf("Transmit of %d bytes: %v", l, err)
		}
	}

	// RX: batches that fill the ring, several times round.
	for round := 0; round < 8; round++ {
		sent := 0
		for dev.inject(nictest.Pattern(64+sent, byte(100+sent))) {
			sent++
		}
		if sent != e1000.RingSize-1 {
			t.Fatalf("round %d: device took %d frames, want %d", round, sent, e1000.RingSize-1)
		}
		got := 0
		nic.Poll(func(f []byte) {
			if !bytes.Equal(f, nictest.Pattern(64+got, byte(100+got))) {
				t.Fatalf("round %d frame %d: got %d bytes", round, got, len(f))
			}
			got++
		})
		if got != sent {
			t.Fatalf("round %d: polled %d of %d", round, got, sent)
		}
	}
	if n := nic.Poll(func([]byte) {}); n != 0 {
		t.Fatalf("empty ring polled %d frames", n)
	}
}

func TestFakeTXFullReturns(t *testing.T) {
	dev := newFakeDev(testMAC)
	nic := newNIC(t, dev, fakeRegs, dev.dma())
	dev.stopTX = true
	f := nictest.Pattern(100, 1)
	for i := 0; i < e1000.RingSize-1; i++ {
		if err := nic.Transmit(f); err != nil {
			t.Fatalf("frame %d: %v", i, err)
		}
	}
	if err := nic.Transmit(f); !errors.Is(err, e1000.ErrTXFull) {
		t.Fatalf("Transmit on a full ring: %v", err)
	}
	dev.stopTX = false
	if err := nic.Reset(); err != nil {
		t.Fatal(err)
	}
	if err := nic.Transmit(f); err != nil {
		t.Fatalf("after Reset: %v", err)
	}
}

func TestFakeMACFromEEPROM(t *testing.T) {
	dev := newFakeDev(testMAC)
	dev.regs[0x5404/4] = 0 // RAH0.AV clear: entry 0 invalid
	dev.regs[0x5400/4] = 0
	nic := newNIC(t, dev, fakeRegs, dev.dma())
	if nic.MAC() != testMAC {
		t.Fatalf("MAC %x, want %x", nic.MAC(), testMAC)
	}
	// Reset writes it back into entry 0, valid.
	if dev.regs[0x5404/4]>>31 != 1 || dev.regs[0x5400/4] != 0x12005452 {
		t.Fatalf("RAL0/RAH0 = %#x/%#x", dev.regs[0x5400/4], dev.regs[0x5404/4])
	}
}

func TestFakeNoDevice(t *testing.T) {
	dev := newFakeDev(testMAC)
	dev.regs[0x0008/4] = 0xffffffff
	rings, rest, _ := dev.dma().Carve(e1000.RingBytes+128, 128)
	pool, _ := mbufpool.New(rest, e1000.BufSize)
	if _, err := e1000.New(dev, fakeRegs, rings, pool); !errors.Is(err, e1000.ErrNoDevice) {
		t.Fatalf("New on all-ones registers: %v", err)
	}
	if pool.Stats().InUse != 0 {
		t.Fatalf("New kept %d buffers after failing", pool.Stats().InUse)
	}
}

// A Reset that fails after New took its buffers gives them all back; the
// high-water mark shows they had been taken.
func TestFakeResetFailsReleasesBuffers(t *testing.T) {
	dev := newFakeDev(testMAC)
	dev.stuckReset = true
	rings, rest, _ := dev.dma().Carve(e1000.RingBytes+128, 128)
	pool, _ := mbufpool.New(rest, e1000.BufSize)
	if _, err := e1000.New(dev, fakeRegs, rings, pool); !errors.Is(err, e1000.ErrResetTimeout) {
		t.Fatalf("New with a reset that never completes: %v", err)
	}
	if st := pool.Stats(); st.HighWater != e1000.BuffersNeeded || st.InUse != 0 {
		t.Fatalf("pool after the failed reset: %+v (want %d taken, none kept)", st, e1000.BuffersNeeded)
	}
}

// TestNoAllocs checks the panic-time paths allocate nothing: Transmit,
// Poll (with a frame each time) and Reset, measured over the fake device
// so the count is the driver's alone.
func TestNoAllocs(t *testing.T) {
	dev := newFakeDev(testMAC)
	nic := newNIC(t, dev, fakeRegs, dev.dma())
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
				t.Fatal("ring full")
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
}
