package imxenet_test

import (
	"errors"
	"testing"
	"unsafe"

	"github.com/tamadump/tamadump/drivers/bus"
	"github.com/tamadump/tamadump/drivers/imxenet"
	"github.com/tamadump/tamadump/mbufpool"
)

// stuckENET is a controller whose ECR.RESET never clears, with a valid
// station address.
type stuckENET struct{ regs map[uint64]uint32 }

const stuckBase = 0x02188000

func (s *stuckENET) Read32(a uint64) uint32 {
	if a == stuckBase+0x024 {
		return 0xf0000001 // ECR: reset value, RESET stuck
	}
	return s.regs[a]
}
func (s *stuckENET) Write32(a uint64, v uint32) { s.regs[a] = v }
func (s *stuckENET) Read8(uint64) uint8         { panic("ENET registers are 32-bit") }
func (s *stuckENET) Read16(uint64) uint16       { panic("ENET registers are 32-bit") }
func (s *stuckENET) Write8(uint64, uint8)       { panic("ENET registers are 32-bit") }
func (s *stuckENET) Write16(uint64, uint16)     { panic("ENET registers are 32-bit") }

// A Reset that fails after New took its buffers gives them all back; the
// high-water mark shows they had been taken.
func TestResetFailsReleasesBuffers(t *testing.T) {
	dev := &stuckENET{regs: map[uint64]uint32{stuckBase + 0x0e4: 0x02000000, stuckBase + 0x0e8: 0x00010000}}
	mem := make([]uint64, (imxenet.RingBytes+imxenet.RingAlign+(imxenet.BuffersNeeded+1)*imxenet.BufSize+mbufpool.Align)/8)
	dma := bus.DMA{Mem: unsafeBytes(mem), Addr: 0x80000000}
	rings, rest, err := dma.Carve(imxenet.RingBytes+imxenet.RingAlign, imxenet.RingAlign)
	if err != nil {
		t.Fatal(err)
	}
	pool, err := mbufpool.New(rest, imxenet.BufSize)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := imxenet.New(dev, stuckBase, rings, pool); !errors.Is(err, imxenet.ErrResetTimeout) {
		t.Fatalf("New with a reset that never completes: %v", err)
	}
	if st := pool.Stats(); st.HighWater != imxenet.BuffersNeeded || st.InUse != 0 {
		t.Fatalf("pool after the failed reset: %+v (want %d taken, none kept)", st, imxenet.BuffersNeeded)
	}
}

// unsafeBytes views 8-byte-aligned memory as bytes.
func unsafeBytes(w []uint64) []byte { return unsafe.Slice((*byte)(unsafe.Pointer(&w[0])), len(w)*8) }
