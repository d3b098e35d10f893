// Package e1000 is a polled driver for the Intel 82540EM (8086:100E), the
// NIC QEMU emulates as `-device e1000`. It uses legacy descriptors, no
// interrupts and no heap allocation after New, so debugnet can run it
// after a panic.
//
// The caller finds the PCI function, maps BAR0 and enables memory decoding
// and bus mastering (without bus mastering QEMU's e1000 neither receives
// nor sends, and TX descriptors are consumed without effect).
//
// QEMU quirks the driver is built around (see shared/spec/qemu-devices.md):
// CTRL.RST resets nothing, so Reset programs every register it relies on;
// each RCTL write stops reception for 1 s, so RCTL is written only by a
// Reset that finds it holding something else; ring lengths are multiples
// of 128 bytes; the device leaves stale RX status bits, so the driver
// zeroes them before handing a descriptor back.
package e1000

import (
	"encoding/binary"
	"errors"
	"fmt"
	"sync/atomic"
	"unsafe"

	"github.com/tamadump/tamadump/debugnet"
	"github.com/tamadump/tamadump/drivers/bus"
	"github.com/tamadump/tamadump/mbufpool"
)

// PCI identity of the supported part.
const (
	VendorID = 0x8086
	DeviceID = 0x100e // 82540EM
)

// BAR0Size is the size of the register BAR.
const BAR0Size = 128 << 10

const (
	// RingSize is the number of descriptors in each ring (a multiple of 8:
	// ring lengths must be multiples of 128 bytes). A dump's window of
	// up to 256 messages brings as many ACKs at once: through 32
	// descriptors the image's dumps lost thousands of them (10,000-17,000
	// retransmissions of 19,400 messages), through 256 tens.
	RingSize = 256
	// RingBytes is how much of the rings region New uses (plus alignment).
	RingBytes = 2 * RingSize * descSize
	// BuffersNeeded is how many pool buffers New takes: one per descriptor.
	BuffersNeeded = 2 * RingSize
	// BufSize is the RX buffer size programmed in RCTL; pool buffers must
	// be at least this big.
	BufSize = 2048

	mtu      = 1500
	maxFrame = mtu + 14 // no FCS, no VLAN tag
	minFrame = 60       // shorter frames are zero-padded: QEMU does not pad

	// txFullChecks bounds how often Transmit re-checks a full TX ring
	// (one register read each: about a microsecond on hardware) before
	// giving up, so a stopped transmitter cannot hang a panic path.
	txFullChecks = 2000
	// resetPolls and eepromPolls bound waits for self-clearing bits.
	resetPolls  = 10000
	eepromPolls = 10000
)

// Errors. They are preallocated: returning them does not allocate.
var (
	ErrTXFull       = errors.New("e1000: transmit ring full")
	ErrFrameSize    = errors.New("e1000: frame empty or larger than 1514 bytes")
	ErrResetTimeout = errors.New("e1000: CTRL.RST did not clear")
	ErrNoDevice     = errors.New("e1000: registers read all-ones (BAR not mapped or memory decoding off)")
	ErrNoMAC        = errors.New("e1000: no valid MAC address in RAL0/RAH0 or EEPROM")
)

// NIC is one 82540EM. Not safe for concurrent use.
type NIC struct {
	mmio bus.MMIO
	regs uint64

	txRing, rxRing bus.DMA
	txBuf, rxBuf   [RingSize]mbufpool.Buf

	txNext  int  // next TX slot to fill
	txClean int  // oldest TX slot not yet reclaimed
	rxNext  int  // next RX descriptor the device completes
	rxFrag  bool // discarding the rest of a multi-descriptor frame
	held    bool // Queue filled slots TDT does not cover yet
	// The checksum context the device holds (QueueGather's), if any.
	ctx    debugnet.Offload
	ctxSet bool

	mac [6]byte
}

var _ debugnet.NIC = (*NIC)(nil)

// New takes the rings from the rings region (RingBytes, 128-byte aligned)
// and BuffersNeeded buffers of at least BufSize bytes from pool, reads the
// MAC address and resets the device (see Reset). regs is BAR0's address.
// On QEMU reception starts 1 s after New returns if RCTL had to be written
// (the RCTL pause).
func New(mmio bus.MMIO, regs uint64, rings bus.DMA, pool *mbufpool.Pool) (*NIC, error) {
	if pool.BufSize() < BufSize {
		return nil, fmt.Errorf("e1000: pool buffers are %d bytes, need %d", pool.BufSize(), BufSize)
	}
	n := &NIC{mmio: mmio, regs: regs}
	var err error
	if n.txRing, rings, err = rings.Carve(RingSize*descSize, 128); err != nil {
		return nil, fmt.Errorf("e1000: TX ring: %w", err)
	}
	if n.rxRing, _, err = rings.Carve(RingSize*descSize, 128); err != nil {
		return nil, fmt.Errorf("e1000: RX ring: %w", err)
	}
	// Descriptor status is read with 64-bit atomic loads: the memory must
	// be aligned in this address space as it is on the bus.
	if uintptr(unsafe.Pointer(&n.txRing.Mem[0]))%descSize != 0 || uintptr(unsafe.Pointer(&n.rxRing.Mem[0]))%descSize != 0 {
		return nil, errors.New("e1000: rings region is not 16-byte aligned in memory")
	}
	if n.read(regSTATUS) == 0xffffffff {
		return nil, ErrNoDevice
	}
	if n.mac, err = n.readMAC(); err != nil {
		return nil, err
	}
	if err := pool.Take(n.txBuf[:], n.rxBuf[:]); err != nil {
		return nil, fmt.Errorf("e1000: %d buffers: %w", BuffersNeeded, err)
	}
	if err := n.Reset(); err != nil {
		pool.Release(n.txBuf[:], n.rxBuf[:])
		return nil, err
	}
	return n, nil
}

func (n *NIC) read(reg uint64) uint32     { return n.mmio.Read32(n.regs + reg) }
func (n *NIC) write(reg uint64, v uint32) { n.mmio.Write32(n.regs+reg, v) }

// readMAC takes the address from receive-address entry 0 if it is valid,
// else from EEPROM words 0-2 (low byte first).
func (n *NIC) readMAC() ([6]byte, error) {
	var mac [6]byte
	if hi := n.read(regRAH0); hi&rahAV != 0 {
		binary.LittleEndian.PutUint32(mac[0:], n.read(regRAL0))
		binary.LittleEndian.PutUint16(mac[4:], uint16(hi))
		if validMAC(mac) {
			return mac, nil
		}
	}
	for w := 0; w < 3; w++ {
		n.write(regEERD, uint32(w)<<8|eerdStart)
		v, i := n.read(regEERD), 0
		for ; v&eerdDone == 0 && i < eepromPolls; i++ {
			v = n.read(regEERD)
		}
		if v&eerdDone == 0 {
			return mac, fmt.Errorf("e1000: EEPROM read of word %d did not complete", w)
		}
		binary.LittleEndian.PutUint16(mac[2*w:], uint16(v>>16))
	}
	if !validMAC(mac) {
		return mac, ErrNoMAC
	}
	return mac, nil
}

func validMAC(m [6]byte) bool {
	return m[0]&1 == 0 && m != [6]byte{}
}

// MAC implements debugnet.NIC.
func (n *NIC) MAC() [6]byte { return n.mac }

// MTU implements debugnet.NIC.
func (n *NIC) MTU() int { return mtu }

// LinkUp reports STATUS.LU.
func (n *NIC) LinkUp() bool { return n.read(regSTATUS)&statusLU != 0 }

// Reset brings the device from any state (rings half updated, garbage
// head/tail or ring registers, RX/TX off, interrupts on, another driver's
// settings) to the state New leaves it in, without allocating. It writes
// RCTL only if it holds something else (after a real reset, or another
// driver's settings): on QEMU, whose reset keeps RCTL, each write stops
// reception for 1 s, so a Reset after our own driver's resumes at once.
//
// One thing it cannot undo on QEMU: a frame half assembled from TX
// descriptors without EOP stays in the emulator (only a device reset
// clears it) and prefixes the next frame sent.
func (n *NIC) Reset() error {
	// Quiesce without touching RCTL. TCTL off stops TX processing (QEMU
	// transmits synchronously on TDT/TCTL writes only while EN is set);
	// RDT = RDH leaves the device no RX descriptors, so no more frames are
	// written through whatever ring it had. Repeat if a frame moved the
	// head meanwhile.
	n.write(regIMC, 0xffffffff)
	n.read(regICR)
	n.write(regTCTL, 0)
	for i := 0; i < 4; i++ {
		h := n.read(regRDH) & 0xffff
		n.write(regRDT, h)
		if n.read(regRDH)&0xffff == h {
			break
		}
	}

	// A real 82540 resets its MAC here (rings, RCTL/TCTL, filters); QEMU
	// only clears the bit, so everything below is programmed regardless.
	n.write(regCTRL, n.read(regCTRL)|ctrlRST)
	i := 0
	for ; n.read(regCTRL)&ctrlRST != 0 && i < resetPolls; i++ {
	}
	if i == resetPolls {
		return ErrResetTimeout
	}
	n.write(regIMC, 0xffffffff)
	n.read(regICR)
	ctrl := n.read(regCTRL)
	ctrl &^= ctrlRST | ctrlPHYRST | ctrlVME | ctrlILOS | ctrlFRCSPD | ctrlFRCDPX
	n.write(regCTRL, ctrl|ctrlSLU|ctrlASDE|ctrlFD)

	// Address filter: our MAC in entry 0, nothing else; no multicast.
	n.write(regRAL0, binary.LittleEndian.Uint32(n.mac[0:]))
	n.write(regRAH0, uint32(binary.LittleEndian.Uint16(n.mac[4:]))|rahAV)
	for e := uint64(1); e < 16; e++ {
		n.write(regRAH0+8*e, 0)
		n.write(regRAL0+8*e, 0)
	}
	for e := uint64(0); e < 128; e++ {
		n.write(regMTA+4*e, 0)
	}

	// RCTL, at most once (every write pauses QEMU's reception for 1 s),
	// while the RX ring is still quiesced: QEMU sizes buffers from RCTL
	// when it is written, so a previous owner's larger BSIZE or LPE must
	// be gone before any of our 2048-byte buffers is exposed; when it
	// already holds our value, its last write sized them for it.
	// Broadcast and all multicast (IPv6 neighbour solicitations come to a
	// solicited-node group, which debugnet picks out), CRC stripped, no
	// long frames, BSIZE 00 = 2048. On real hardware the reset left head
	// == tail == 0 and RCTL 0, so no descriptor is fetched early.
	if n.read(regRCTL) != rctl {
		n.write(regRCTL, rctl)
	}

	// TX ring: every slot owns its buffer; nothing pending.
	for s := 0; s < RingSize; s++ {
		d := n.txRing.Mem[s*descSize : (s+1)*descSize]
		binary.LittleEndian.PutUint64(d[0:], n.txBuf[s].Addr)
		binary.LittleEndian.PutUint64(d[8:], 0)
	}
	n.write(regTDBAL, uint32(n.txRing.Addr))
	n.write(regTDBAH, uint32(n.txRing.Addr>>32))
	n.write(regTDLEN, RingSize*descSize)
	n.write(regTDH, 0)
	n.write(regTDT, 0)
	n.write(regTIPG, tipg)
	n.write(regTCTL, tctlEN|tctlPSP|tctlCT|tctlCOLD)
	n.txNext, n.txClean, n.ctxSet = 0, 0, false

	// RX ring. The head moves to 0 while the tail is still where the
	// quiesce left it, so frames could land from descriptor 0 on: the
	// ring is ours by then, every descriptor with one of our buffers and
	// a clear status, and Poll starts there. Then all descriptors but one
	// go to the device.
	for s := 0; s < RingSize; s++ {
		d := n.rxRing.Mem[s*descSize : (s+1)*descSize]
		binary.LittleEndian.PutUint64(d[0:], n.rxBuf[s].Addr)
		binary.LittleEndian.PutUint64(d[8:], 0)
	}
	n.write(regRDBAL, uint32(n.rxRing.Addr))
	n.write(regRDBAH, uint32(n.rxRing.Addr>>32))
	n.write(regRDLEN, RingSize*descSize)
	n.write(regRDH, 0)
	n.write(regRDT, RingSize-1)
	n.rxNext, n.rxFrag = 0, false
	return nil
}

// load64 reads a descriptor's second quadword in one access, ordered
// before the reads of the data it describes.
func load64(b []byte) uint64 {
	_ = b[7]
	return atomic.LoadUint64((*uint64)(unsafe.Pointer(&b[0])))
}

func (n *NIC) txDesc(s int) []byte { return n.txRing.Mem[s*descSize : (s+1)*descSize] }
func (n *NIC) rxDesc(s int) []byte { return n.rxRing.Mem[s*descSize : (s+1)*descSize] }

// reclaim frees TX slots whose descriptors the device has written back.
func (n *NIC) reclaim() {
	for n.txClean != n.txNext && (load64(n.txDesc(n.txClean)[8:])>>32)&txStatDD != 0 {
		n.txClean = (n.txClean + 1) % RingSize
	}
}

// txFree is how many TX descriptors can be filled: all but the one that
// keeps a full ring from looking empty.
func (n *NIC) txFree() int { return (n.txClean - n.txNext - 1 + RingSize) % RingSize }

// room waits until k TX descriptors are free, telling the device about
// what is queued first; after a bounded number of checks it returns
// ErrTXFull instead of waiting for ever.
func (n *NIC) room(k int) error {
	n.reclaim()
	if n.txFree() < k {
		n.Flush() // the device sends only what TDT covers
	}
	for i := 0; n.txFree() < k; i++ {
		if i == txFullChecks {
			return ErrTXFull
		}
		n.read(regTDH) // lets the device progress; bounds the wait in time
		n.reclaim()
	}
	return nil
}

// tell moves TDT over what was filled, now or (Queue) at the next Flush.
func (n *NIC) tell(now bool) {
	if !now {
		n.held = true
		return
	}
	n.held = false
	n.write(regTDT, uint32(n.txNext))
}

// Transmit implements debugnet.NIC: it copies frame into the next slot's
// buffer (zero-padded to 60 bytes) and hands the descriptor to the device.
// If the ring stays full for a bounded number of checks, it returns
// ErrTXFull instead of waiting for ever.
func (n *NIC) Transmit(frame []byte) error { return n.transmit(frame, true) }

func (n *NIC) transmit(frame []byte, tell bool) error {
	if len(frame) == 0 || len(frame) > maxFrame {
		return ErrFrameSize
	}
	if err := n.room(1); err != nil {
		return err
	}
	s := n.txNext
	b := n.txBuf[s].Data
	l := copy(b, frame)
	if l < minFrame {
		clear(b[l:minFrame])
		l = minFrame
	}
	d := n.txDesc(s)
	binary.LittleEndian.PutUint64(d[0:], n.txBuf[s].Addr)
	binary.LittleEndian.PutUint64(d[8:], uint64(l)|uint64(txCmdEOP|txCmdIFCS|txCmdRS)<<24)
	n.txNext = (s + 1) % RingSize
	n.tell(tell)
	return nil
}

// Poll implements debugnet.NIC. It hands each completed frame to fn, then
// clears the descriptor's status and gives it back by moving RDT (once per
// call). It handles at most one ring's worth of descriptors per call. fn
// may call Transmit.
func (n *NIC) Poll(fn func(frame []byte)) int {
	frames, last := 0, -1
	for done := 0; done < RingSize; done++ {
		s := n.rxNext
		d := n.rxDesc(s)
		hi := load64(d[8:])
		status, errs := uint8(hi>>32), uint8(hi>>40)
		if status&rxStatDD == 0 {
			break
		}
		eop := status&rxStatEOP != 0
		if eop && !n.rxFrag && errs == 0 {
			if l := int(uint16(hi)); l <= len(n.rxBuf[s].Data) {
				fn(n.rxBuf[s].Data[:l])
				frames++
			}
		}
		n.rxFrag = !eop // a frame over several buffers is dropped whole
		binary.LittleEndian.PutUint64(d[0:], n.rxBuf[s].Addr)
		binary.LittleEndian.PutUint64(d[8:], 0)
		last = s
		n.rxNext = (s + 1) % RingSize
	}
	if last >= 0 {
		// The descriptor at RDT stays with the driver: moving RDT to the
		// last one processed returns all the others.
		n.write(regRDT, uint32(last))
	}
	return frames
}
