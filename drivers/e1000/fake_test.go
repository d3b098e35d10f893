package e1000_test

import (
	"encoding/binary"

	"github.com/tamadump/tamadump/drivers/bus"
)

// fakeDev is an in-memory 82540EM that emulates just what the driver
// relies on: registers, EERD, TX on TDT/TCTL writes (DD write-back) and RX
// into the ring on inject. It never allocates, so allocation counts taken
// around driver calls are the driver's alone (the qtest harness is
// allocation-free on its hot path too, but its socket deadlines make the
// count depend on the runtime's timer code).
type fakeDev struct {
	regs   [0x20000 / 4]uint32
	mem    []byte // DMA memory at bus address base
	base   uint64
	eeprom [64]uint16

	stopTX     bool // model a transmitter that never completes
	stuckReset bool // model a CTRL.RST that never clears
	sent       int
	lastLen    int
	last       [2048]byte
}

const fakeRegs = 0xfebc0000

func newFakeDev(mac [6]byte) *fakeDev {
	f := &fakeDev{mem: make([]byte, 4<<20), base: 0x100000}
	for i := 0; i < 3; i++ {
		f.eeprom[i] = binary.LittleEndian.Uint16(mac[2*i:])
	}
	f.regs[0x5400/4] = binary.LittleEndian.Uint32(mac[0:])
	f.regs[0x5404/4] = uint32(binary.LittleEndian.Uint16(mac[4:])) | 1<<31
	f.regs[0x0008/4] = 0x80080783
	return f
}

func (f *fakeDev) dma() bus.DMA { return bus.DMA{Mem: f.mem, Addr: f.base} }

func (f *fakeDev) at(addr uint64, n int) []byte {
	off := addr - f.base
	return f.mem[off : off+uint64(n)]
}

func (f *fakeDev) reg(r int) uint32 { return f.regs[r/4] }

func (f *fakeDev) Read32(addr uint64) uint32 {
	r := int(addr - fakeRegs)
	v := f.regs[r/4]
	if r == 0x00c0 { // ICR: read clears
		f.regs[r/4] = 0
	}
	return v
}

func (f *fakeDev) Write32(addr uint64, v uint32) {
	r := int(addr - fakeRegs)
	switch r {
	case 0x0000: // CTRL: RST self-clears, resets nothing (as QEMU)
		if !f.stuckReset {
			v &^= 1 << 26
		}
	case 0x0014: // EERD
		if v&1 != 0 {
			v = uint32(f.eeprom[(v>>8)&0x3f])<<16 | 1<<4
		}
	case 0x00d8: // IMC
		f.regs[0x00d0/4] &^= v
		return
	case 0x2810, 0x2818, 0x3810, 0x3818: // heads and tails keep 16 bits
		v &= 0xffff
	}
	f.regs[r/4] = v
	if r == 0x3818 || r == 0x0400 {
		f.transmit()
	}
}

func (f *fakeDev) ring(bal int) (uint64, uint32) {
	return uint64(f.reg(bal+4))<<32 | uint64(f.reg(bal)&^0xf), f.reg(bal+8) / 16
}

func (f *fakeDev) transmit() {
	if f.reg(0x0400)&2 == 0 || f.stopTX {
		return
	}
	base, n := f.ring(0x3800)
	for f.reg(0x3810) != f.reg(0x3818) {
		h := f.reg(0x3810)
		d := f.at(base+uint64(h)*16, 16)
		l := int(binary.LittleEndian.Uint16(d[8:]))
		f.lastLen = copy(f.last[:], f.at(binary.LittleEndian.Uint64(d), l))
		f.sent++
		if d[11]&0x08 != 0 { // RS
			d[12] |= 1 // DD
		}
		f.regs[0x3810/4] = (h + 1) % n
	}
}

// inject receives a frame into the ring, or reports that it could not.
func (f *fakeDev) inject(frame []byte) bool {
	base, n := f.ring(0x2800)
	h := f.reg(0x2810)
	if f.reg(0x0100)&2 == 0 || h == f.reg(0x2818) {
		return false
	}
	d := f.at(base+uint64(h)*16, 16)
	copy(f.at(binary.LittleEndian.Uint64(d), len(frame)), frame)
	binary.LittleEndian.PutUint16(d[8:], uint16(len(frame)))
	d[12] |= 0x07 // DD, EOP, IXSM
	f.regs[0x2810/4] = (h + 1) % n
	return true
}

func (f *fakeDev) Read8(addr uint64) uint8       { panic("e1000 registers are 32-bit") }
func (f *fakeDev) Read16(addr uint64) uint16     { panic("e1000 registers are 32-bit") }
func (f *fakeDev) Write8(addr uint64, v uint8)   { panic("e1000 registers are 32-bit") }
func (f *fakeDev) Write16(addr uint64, v uint16) { panic("e1000 registers are 32-bit") }
