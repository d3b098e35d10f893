// Package imxenet is a polled driver for the i.MX6 10/100/1000 Ethernet
// controller (ENET, the FEC's successor), as QEMU emulates it on the
// mcimx6ul-evk board (hw/net/imx_fec.c, type imx.enet; ENET1 at
// 0x02188000 per hw/arm/fsl-imx6ul.h). It uses legacy 8-byte buffer
// descriptors, no interrupts and no heap allocation after New, so
// debugnet can run it after a panic.
//
// The caller has the controller's clocks and pins set up (the boot
// loader's or the normal driver's job on hardware; nothing to do on QEMU).
// Standby prepares the driver on a controller another driver runs, and
// Reset takes it over after a crash.
//
// DMA coherence: the rings and buffers must be memory the controller and
// the CPU see alike. The i.MX6UL board gives uncached memory (see
// board/imx6ul), so the driver does no cache maintenance and needs only
// ordering: descriptor words are written and read with atomic accesses
// (DMB on ARM: the buffer address before the ownership bit, the
// ownership bit before the buffer's data), and bus.Direct puts a DSB
// before every doorbell write.
//
// What QEMU's model does that the driver is built around: TDAR and RDAR
// writes do nothing unless ECR.ETHEREN is set; TX runs synchronously on
// the TDAR write; reception stops whenever the next RX descriptor is not
// empty and restarts only on an RDAR write, so Poll writes RDAR after
// giving descriptors back; received lengths include the 4-byte FCS, which
// is also in the buffer; there is no address filtering at all (writes to
// the hash registers IAUR/IALR/GAUR/GALR are ignored, RCR.PROM is stored
// but not acted on: every frame reaches the ring, multicast included), so
// Poll itself drops what hardware with this driver's settings would not
// take; ECR.RESET restores PALR/PAUR from the last address written to
// them, not from the -net nic option.
package imxenet

import (
	"errors"
	"fmt"
	"sync/atomic"
	"unsafe"

	"github.com/tamadump/tamadump/debugnet"
	"github.com/tamadump/tamadump/drivers/bus"
	"github.com/tamadump/tamadump/mbufpool"
)

// ENET1Addr is ENET1's register base on the i.MX6UL.
const ENET1Addr = 0x02188000

const (
	// RingSize is the number of descriptors in each ring.
	RingSize = 32
	// RingAlign is the alignment of each ring (the hardware needs 8; 64
	// keeps each ring in whole cache lines).
	RingAlign = 64
	// RingBytes is how much of the rings region New uses (plus alignment).
	RingBytes = 2 * RingSize * descSize
	// BuffersNeeded is how many pool buffers New takes: one per descriptor.
	BuffersNeeded = 2 * RingSize
	// BufSize is the RX buffer size programmed in MRBR (a multiple of 16
	// holding a whole 1518-byte frame with FCS); pool buffers must be at
	// least this big.
	BufSize = 1536

	mtu      = 1500
	maxFrame = mtu + 14 // no FCS, no VLAN tag
	minFrame = 60       // shorter frames are zero-padded: QEMU does not pad
	fcsLen   = 4
)

// Errors. They are preallocated: returning them does not allocate.
var (
	ErrTXFull       = errors.New("imxenet: transmit ring full")
	ErrFrameSize    = errors.New("imxenet: frame empty or larger than 1514 bytes")
	ErrResetTimeout = errors.New("imxenet: ECR.RESET did not clear")
	ErrNoDevice     = errors.New("imxenet: registers read all-ones or all-zeros")
	ErrNoMAC        = errors.New("imxenet: no valid MAC address in PALR/PAUR")
)

// NIC is one ENET. Not safe for concurrent use.
type NIC struct {
	mmio bus.MMIO
	regs uint64

	txRing, rxRing bus.DMA
	txBuf, rxBuf   [RingSize]mbufpool.Buf

	txNext  int  // next TX slot to fill
	txClean int  // oldest TX slot not yet reclaimed
	rxNext  int  // next RX descriptor the controller completes
	rxFrag  bool // discarding the rest of a multi-descriptor frame

	mac [6]byte
	phy uint32 // MDIO address of the PHY, phyAddrs if none answered, phyUnknown before the search
}

var _ debugnet.NIC = (*NIC)(nil)

// New takes the rings from the rings region (RingBytes, RingAlign-aligned)
// and BuffersNeeded buffers of at least BufSize bytes from pool, reads the
// MAC address the boot loader (or QEMU) left in PALR/PAUR and resets the
// controller (see Reset). regs is the controller's register base, e.g.
// ENET1Addr.
func New(mmio bus.MMIO, regs uint64, rings bus.DMA, pool *mbufpool.Pool) (*NIC, error) {
	n, err := carve(mmio, regs, rings, pool)
	if err != nil {
		return nil, err
	}
	if v := n.read(regECR); v == 0xffffffff || v == 0 {
		return nil, ErrNoDevice
	}
	l, u := n.read(regPALR), n.read(regPAUR)
	n.mac = [6]byte{byte(l >> 24), byte(l >> 16), byte(l >> 8), byte(l), byte(u >> 24), byte(u >> 16)}
	if !validMAC(n.mac) {
		return nil, ErrNoMAC
	}
	if err := pool.Take(n.txBuf[:], n.rxBuf[:]); err != nil {
		return nil, fmt.Errorf("imxenet: %d buffers: %w", BuffersNeeded, err)
	}
	if err := n.Reset(); err != nil {
		pool.Release(n.txBuf[:], n.rxBuf[:])
		return nil, err
	}
	return n, nil
}

// Standby prepares the driver for a controller that another driver (in
// normal operation, tamago's soc/nxp/enet under imx-enet) is running: it
// takes the rings and buffers as New does and keeps mac, the address the
// other driver gave the controller, but touches no register, so the other
// driver goes on undisturbed. After a crash, Reset takes the controller
// over from whatever state that driver left, using only what Standby
// reserved.
func Standby(mmio bus.MMIO, regs uint64, rings bus.DMA, pool *mbufpool.Pool, mac [6]byte) (*NIC, error) {
	if !validMAC(mac) {
		return nil, ErrNoMAC
	}
	n, err := carve(mmio, regs, rings, pool)
	if err != nil {
		return nil, err
	}
	n.mac = mac
	if err := pool.Take(n.txBuf[:], n.rxBuf[:]); err != nil {
		return nil, fmt.Errorf("imxenet: %d buffers: %w", BuffersNeeded, err)
	}
	return n, nil
}

// carve makes the driver's state from its memory, without touching the
// controller or taking buffers.
func carve(mmio bus.MMIO, regs uint64, rings bus.DMA, pool *mbufpool.Pool) (*NIC, error) {
	if pool.BufSize() < BufSize {
		return nil, fmt.Errorf("imxenet: pool buffers are %d bytes, need %d", pool.BufSize(), BufSize)
	}
	n := &NIC{mmio: mmio, regs: regs, phy: phyUnknown}
	var err error
	if n.txRing, rings, err = rings.Carve(RingSize*descSize, RingAlign); err != nil {
		return nil, fmt.Errorf("imxenet: TX ring: %w", err)
	}
	if n.rxRing, _, err = rings.Carve(RingSize*descSize, RingAlign); err != nil {
		return nil, fmt.Errorf("imxenet: RX ring: %w", err)
	}
	// Descriptor words are accessed atomically: they must be aligned in
	// this address space as they are on the bus.
	if uintptr(unsafe.Pointer(&n.txRing.Mem[0]))%descSize != 0 || uintptr(unsafe.Pointer(&n.rxRing.Mem[0]))%descSize != 0 {
		return nil, errors.New("imxenet: rings region is not 8-byte aligned in memory")
	}
	if n.txRing.Addr+RingBytes > 1<<32 || n.rxRing.Addr+RingBytes > 1<<32 {
		return nil, errors.New("imxenet: rings above 4 GiB")
	}
	if r := pool.Region(); r.Addr+uint64(len(r.Mem)) > 1<<32 {
		return nil, errors.New("imxenet: buffer pool above 4 GiB")
	}
	return n, nil
}

// validMAC: a station address is unicast and not all zeros.
func validMAC(m [6]byte) bool { return m[0]&1 == 0 && m != [6]byte{} }

func (n *NIC) read(reg uint64) uint32     { return n.mmio.Read32(n.regs + reg) }
func (n *NIC) write(reg uint64, v uint32) { n.mmio.Write32(n.regs+reg, v) }

// mdioRead reads a PHY register through MMFR, waiting (bounded) for the
// MII event.
func (n *NIC) mdioRead(phy, reg uint32) (uint16, bool) {
	n.write(regEIR, eirMII)
	n.write(regMMFR, mmfrRead|phy<<mmfrPAShift|reg<<mmfrRAShift)
	for i := 0; i < mdioPolls; i++ {
		if n.read(regEIR)&eirMII != 0 {
			n.write(regEIR, eirMII)
			return uint16(n.read(regMMFR)), true
		}
	}
	return 0, false
}

// MAC implements debugnet.NIC.
func (n *NIC) MAC() [6]byte { return n.mac }

// MTU implements debugnet.NIC.
func (n *NIC) MTU() int { return mtu }

// LinkUp reports the PHY's link status (BMSR bit 2, read twice: it latches
// low on real PHYs). The first call finds the PHY on the MDIO bus (the
// first address answering BMSR). With no PHY found it reports true:
// nothing tells otherwise.
func (n *NIC) LinkUp() bool {
	if n.phy == phyUnknown {
		n.phy = phyAddrs
		for a := uint32(0); a < phyAddrs; a++ {
			if v, ok := n.mdioRead(a, phyBMSR); ok && v != 0xffff && v != 0 {
				n.phy = a
				break
			}
		}
	}
	if n.phy == phyAddrs {
		return true
	}
	n.mdioRead(n.phy, phyBMSR)
	v, ok := n.mdioRead(n.phy, phyBMSR)
	return ok && v&bmsrLinkUp != 0
}

// Reset brings the controller from any state (rings half updated, garbage
// ring registers, RX/TX on or off, interrupts unmasked, another driver's
// settings) to the state New leaves it in, without allocating. ECR.RESET
// stops both DMA engines and clears every register; the driver then
// programs all it relies on, rewrites both rings and kicks RX.
func (n *NIC) Reset() error {
	n.write(regECR, ecrReset)
	i := 0
	for ; n.read(regECR)&ecrReset != 0 && i < resetPolls; i++ {
	}
	if i == resetPolls {
		return ErrResetTimeout
	}
	n.write(regEIMR, 0)
	n.write(regEIR, 0xffffffff)
	n.write(regMSCR, mscrSpeed)

	// Our address, no individual hash matches, every group hash bucket:
	// unicast to us, broadcast, and all multicast (IPv6 neighbour
	// solicitations come to a solicited-node group, which debugnet picks
	// out).
	n.write(regPALR, uint32(n.mac[0])<<24|uint32(n.mac[1])<<16|uint32(n.mac[2])<<8|uint32(n.mac[3]))
	n.write(regPAUR, uint32(n.mac[4])<<24|uint32(n.mac[5])<<16|paurTypeField)
	n.write(regIAUR, 0)
	n.write(regIALR, 0)
	n.write(regGAUR, 0xffffffff)
	n.write(regGALR, 0xffffffff)

	// Longest frame 1518 with FCS; FCS kept in the buffer (CRCFWD clear),
	// as QEMU always does; not promiscuous.
	n.write(regRCR, (maxFrame+fcsLen)<<rcrMaxFLShift|rcrMIIMode|rcrRMIIMode)
	n.write(regTCR, tcrFDEN)
	n.write(regTFWR, tfwrSTRFWD)
	n.write(regMRBR, BufSize)

	// TX ring: every slot owns its buffer; nothing ready.
	for s := 0; s < RingSize; s++ {
		n.putDesc(n.txRing, s, n.txBuf[s].Addr, 0, 0)
	}
	n.txNext, n.txClean = 0, 0
	// RX ring: every descriptor empty, i.e. the controller's.
	for s := 0; s < RingSize; s++ {
		n.putDesc(n.rxRing, s, n.rxBuf[s].Addr, bdEmpty, 0)
	}
	n.rxNext, n.rxFrag = 0, false
	n.write(regTDSR, uint32(n.txRing.Addr))
	n.write(regRDSR, uint32(n.rxRing.Addr))

	n.write(regECR, ecrEtherEn|ecrDBSWP)
	n.write(regRDAR, 0)
	return nil
}

// word0 is a descriptor's flags-and-length word, read in one access and
// ordered before the reads of the buffer it describes.
func word0(ring bus.DMA, s int) uint32 {
	b := ring.Mem[s*descSize : s*descSize+4]
	return atomic.LoadUint32((*uint32)(unsafe.Pointer(&b[0])))
}

// putDesc writes descriptor s: the buffer address first, then flags and
// length in one store, so the controller never sees the ownership bit
// with a stale address. The wrap bit goes on the ring's last slot.
func (n *NIC) putDesc(ring bus.DMA, s int, addr uint64, flags uint32, length int) {
	if s == RingSize-1 {
		flags |= bdWrap
	}
	d := ring.Mem[s*descSize : (s+1)*descSize]
	atomic.StoreUint32((*uint32)(unsafe.Pointer(&d[4])), uint32(addr))
	atomic.StoreUint32((*uint32)(unsafe.Pointer(&d[0])), flags<<16|uint32(length))
}

// reclaim frees TX slots the controller is done with.
func (n *NIC) reclaim() {
	for n.txClean != n.txNext && (word0(n.txRing, n.txClean)>>16)&bdReady == 0 {
		n.txClean = (n.txClean + 1) % RingSize
	}
}

func (n *NIC) txFull() bool { return (n.txNext+1)%RingSize == n.txClean }

// Transmit implements debugnet.NIC: it copies frame into the next slot's
// buffer (zero-padded to 60 bytes), marks the descriptor ready and kicks
// TDAR. If the ring stays full for a bounded number of checks, it returns
// ErrTXFull instead of waiting for ever.
func (n *NIC) Transmit(frame []byte) error {
	if len(frame) == 0 || len(frame) > maxFrame {
		return ErrFrameSize
	}
	n.reclaim()
	for i := 0; n.txFull(); i++ {
		if i == txFullChecks {
			return ErrTXFull
		}
		n.write(regTDAR, 0) // lets a stalled controller restart; bounds the wait
		n.reclaim()
	}
	s := n.txNext
	b := n.txBuf[s].Data
	l := copy(b, frame)
	if l < minFrame {
		clear(b[l:minFrame])
		l = minFrame
	}
	n.putDesc(n.txRing, s, n.txBuf[s].Addr, bdReady|bdLast|bdTC, l)
	n.txNext = (s + 1) % RingSize
	n.write(regTDAR, 0)
	return nil
}

// Poll implements debugnet.NIC. It hands each completed frame for this
// station (unicast to MAC or broadcast) to fn without its FCS, gives the
// descriptor back and, once per call, kicks RDAR. It handles at most one
// ring's worth of descriptors per call. fn may call Transmit.
func (n *NIC) Poll(fn func(frame []byte)) int {
	frames, done := 0, 0
	for ; done < RingSize; done++ {
		s := n.rxNext
		w := word0(n.rxRing, s)
		flags, l := w>>16, int(uint16(w))
		if flags&bdEmpty != 0 {
			break
		}
		last := flags&bdLast != 0
		if last && !n.rxFrag && flags&bdRXErr == 0 && l >= 14+fcsLen && l <= len(n.rxBuf[s].Data) {
			f := n.rxBuf[s].Data[:l-fcsLen]
			if n.forUs(f) {
				fn(f)
				frames++
			}
		}
		n.rxFrag = !last // a frame over several buffers is dropped whole
		n.putDesc(n.rxRing, s, n.rxBuf[s].Addr, bdEmpty, 0)
		n.rxNext = (s + 1) % RingSize
	}
	if done > 0 {
		n.write(regRDAR, 0)
	}
	return frames
}

// forUs is the destination filter the controller applies on hardware
// with Reset's settings and QEMU does not: unicast to our address (the
// individual hash is empty), and every group address, broadcast included
// (every group hash bucket is set).
func (n *NIC) forUs(f []byte) bool {
	return f[0]&1 != 0 || [6]byte(f[:6]) == n.mac
}
