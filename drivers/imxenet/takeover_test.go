package imxenet_test

import (
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/tamadump/tamadump/drivers/imxenet"
	"github.com/tamadump/tamadump/drivers/nictest"
	"github.com/tamadump/tamadump/qemu"
)

// enetSim programs ENET1 through qtest the way tamago's soc/nxp/enet
// (v1.26.0) does in normal operation under imx-enet: its Init register
// sequence, then Start with 16-entry legacy rings and 1536-byte buffers
// in OCRAM (tamago's default DMA region), byte-wise descriptor updates,
// and an RDAR or TDAR write on every Rx and Tx.
type enetSim struct {
	t     *testing.T
	vm    *qemu.VM
	rx    int // next RX descriptor to pop
	tx    int // next TX descriptor to fill
	rxLen [enetRing]int
}

const (
	enetRing  = 16
	enetBuf   = 1536 // MTU 1518 rounded up to 64
	ocram     = 0x00900000
	enetRXBD  = ocram          // RX descriptors
	enetTXBD  = ocram + 0x100  // TX descriptors
	enetRXBuf = ocram + 0x1000 // RX buffers, then TX buffers
	enetTXBuf = enetRXBuf + enetRing*enetBuf

	bdE, bdR, bdW, bdL, bdTC = 1 << 15, 1 << 15, 1 << 13, 1 << 11, 1 << 10
)

func (e *enetSim) w(reg uint64, v uint32) { e.vm.Write32(regs+reg, v) }
func (e *enetSim) r(reg uint64) uint32    { return e.vm.Read32(regs + reg) }
func (e *enetSim) set(reg uint64, bits uint32) {
	e.w(reg, e.r(reg)|bits)
}

// init is enet.Init with mac (setup()): soft reset, little-endian
// descriptors, interrupts cleared and masked, full duplex, MIB off, legacy
// descriptors, buffer and frame sizes, the address, RMII with flow
// control, the MII clock, then ETHEREN.
func (e *enetSim) init(mac [6]byte) {
	e.set(0x024, 1) // ECR.RESET
	for i := 0; e.r(0x024)&1 != 0; i++ {
		if i > 1000 {
			e.t.Fatal("ECR.RESET stuck")
		}
	}
	e.set(0x024, 1<<8) // DBSWP
	e.w(0x004, 0xffffffff)
	e.w(0x008, 0)
	e.set(0x0c4, 1<<2)  // TCR.FDEN
	e.set(0x064, 1<<31) // MIBC.MIB_DIS
	e.w(0x024, e.r(0x024)&^(1<<5))
	e.w(0x188, enetBuf)
	e.w(0x1b0, 1518)                              // FTRL
	e.w(0x084, e.r(0x084)&^(0x3fff<<16)|1518<<16) // RCR.MAX_FL
	e.w(0x0e4, binary.BigEndian.Uint32(mac[0:4])) // PALR
	e.w(0x0e8, uint32(binary.BigEndian.Uint16(mac[4:6]))<<16)
	e.set(0x084, 1<<2|1<<8|1<<5)               // MII_MODE, RMII_MODE, FCE
	e.w(0x084, e.r(0x084)&^1)                  // LOOP off
	e.w(0x044, 1<<8|(66000000/(2*2500000))<<1) // MSCR: hold time, MII speed
	e.set(0x024, 1<<1)                         // ETHEREN
}

// start is enet.Start: both rings, RDSR/TDSR, then RDAR.
func (e *enetSim) start() {
	for i := 0; i < enetRing; i++ {
		st := uint32(bdE)
		if i == enetRing-1 {
			st |= bdW
		}
		e.vm.Write32(enetRXBD+uint64(8*i), st<<16)
		e.vm.Write32(enetRXBD+uint64(8*i)+4, uint32(enetRXBuf+i*enetBuf))
		st = 0
		if i == enetRing-1 {
			st = bdW
		}
		e.vm.Write32(enetTXBD+uint64(8*i), st<<16)
		e.vm.Write32(enetTXBD+uint64(8*i)+4, uint32(enetTXBuf+i*enetBuf))
	}
	e.w(0x180, enetRXBD)
	e.w(0x184, enetTXBD)
	e.set(0x010, 1<<24)
}

// push is enet's tx.push: length and status, the data, the wrap bit on
// the last slot, then READY, byte by byte as its descriptor slices do; kick
// is Tx's TDAR write after it.
func (e *enetSim) push(f []byte, kick bool) {
	d := uint64(enetTXBD + 8*e.tx)
	e.vm.Write8(d, byte(len(f)))
	e.vm.Write8(d+1, byte(len(f)>>8))
	st := uint16(bdL | bdTC)
	e.vm.Write8(d+2, byte(st))
	e.vm.Write8(d+3, byte(st>>8))
	if _, err := e.vm.Command(fmt.Sprintf("write 0x%x %d 0x%s", enetTXBuf+e.tx*enetBuf, len(f), hex.EncodeToString(f))); err != nil {
		e.t.Fatal(err)
	}
	if e.tx == enetRing-1 {
		e.vm.Write8(d+3, e.vm.Read8(d+3)|bdW>>8)
	}
	e.vm.Write8(d+3, e.vm.Read8(d+3)|bdR>>8)
	e.tx = (e.tx + 1) % enetRing
	if kick {
		e.set(0x014, 1<<24)
	}
}

// pop is enet's rx.pop and the RDAR write of Rx: the next completed
// descriptor is handed back empty; it reports whether there was one.
func (e *enetSim) pop() bool {
	d := uint64(enetRXBD + 8*e.rx)
	w := e.vm.Read32(d)
	if w>>16&bdE == 0 {
		e.rxLen[e.rx] = int(uint16(w))
		e.vm.Write8(d+3, e.vm.Read8(d+3)|bdE>>8)
		e.rx = (e.rx + 1) % enetRing
	}
	e.set(0x010, 1<<24)
	return w>>16&bdE == 0
}

var sink []byte

// counting is the bus as the driver sees it, counting its accesses.
type counting struct {
	*qemu.VM
	n        int
	min, max uint64
}

func (c *counting) note(a uint64) {
	if c.n == 0 || a < c.min {
		c.min = a
	}
	c.max = max(c.max, a)
	c.n++
}
func (c *counting) Read8(a uint64) uint8       { c.note(a); return c.VM.Read8(a) }
func (c *counting) Read16(a uint64) uint16     { c.note(a); return c.VM.Read16(a) }
func (c *counting) Read32(a uint64) uint32     { c.note(a); return c.VM.Read32(a) }
func (c *counting) Write8(a uint64, v uint8)   { c.note(a); c.VM.Write8(a, v) }
func (c *counting) Write16(a uint64, v uint16) { c.note(a); c.VM.Write16(a, v) }
func (c *counting) Write32(a uint64, v uint32) { c.note(a); c.VM.Write32(a, v) }

// TestTakeover: tamago's enet driver runs ENET1 with its rings in OCRAM,
// mid-flight (RX ring full with frames still queued behind it, received
// frames not yet popped, TX frames marked ready but never kicked, the
// hardware's ring positions mid-ring), with interrupts masked as enet
// leaves them or unmasked by an application. imxenet prepared on the
// same controller with Standby touches nothing; after the "crash" Reset
// takes the controller over without allocating, none of the abandoned
// frames goes out, the controller leaves OCRAM alone, and a whole netdump
// goes through byte-exact.
func TestTakeover(t *testing.T) {
	for _, unmasked := range []bool{false, true} {
		t.Run(map[bool]string{false: "masked", true: "unmasked"}[unmasked], func(t *testing.T) {
			vm := qemu.Start(t, qemu.Config{
				Machine: qemu.MCIMX6ULEVK, RAMMiB: 16, Netdevs: []string{"n0"},
				Args: []string{"-net", "nic,netdev=n0,macaddr=52:54:00:12:34:56"},
			})
			link := vm.Link("n0")
			mac := [6]byte{0x1a, 0x55, 0x89, 0xa2, 0x69, 0x41} // what the board gave imx-enet
			e := &enetSim{t: t, vm: vm}
			e.init(mac)
			e.start()

			mmio := &counting{VM: vm}
			rings, pool := memory(t, vm.DMA())
			nic, err := imxenet.Standby(mmio, regs, rings, pool, mac)
			if err != nil {
				t.Fatal(err)
			}
			if mmio.n != 0 {
				t.Fatalf("Standby made %d register accesses", mmio.n)
			}
			if nic.MAC() != mac {
				t.Fatalf("MAC %x", nic.MAC())
			}

			// Normal operation, undisturbed by Standby: frames out...
			for i := 0; i < 5; i++ {
				f := nictest.Frame(100+i, hostMAC, mac, byte(i))
				e.push(f, true)
				got, err := link.Recv(5 * time.Second)
				if err != nil || !bytes.Equal(got, f) {
					t.Fatalf("enet TX %d: %v %x", i, err, got)
				}
			}
			// ...and in: two popped, then more than the ring holds.
			in := func(i int) []byte { return nictest.Frame(200+i, mac, hostMAC, byte(0x80+i)) }
			for i := 0; i < 2; i++ {
				if err := link.Send(in(i)); err != nil {
					t.Fatal(err)
				}
				deadline := time.Now().Add(5 * time.Second)
				for !e.pop() {
					if time.Now().After(deadline) {
						t.Fatalf("enet RX %d never completed", i)
					}
				}
				if e.rxLen[i] != len(in(i))+4 { // QEMU counts the FCS
					t.Fatalf("enet RX %d: %d bytes", i, e.rxLen[i])
				}
			}
			for i := 2; i < 2+enetRing+4; i++ {
				if err := link.Send(in(i)); err != nil {
					t.Fatal(err)
				}
			}
			time.Sleep(50 * time.Millisecond)
			if full := vm.Read32(uint64(enetRXBD+8*e.rx)) >> 16 & bdE; full != 0 {
				t.Fatal("enet's RX ring did not fill")
			}
			// Frames marked ready that the crash keeps from being kicked.
			var abandoned [][]byte
			for i := 0; i < 3; i++ {
				f := nictest.Frame(300+i, hostMAC, mac, byte(0x40+i))
				abandoned = append(abandoned, f)
				e.push(f, false)
			}
			if unmasked {
				vm.Write32(regs+0x008, 0xffffffff)
			}
			ocramBefore := readOCRAM(t, vm)

			// The crash: the driver takes over.
			if err := nic.Reset(); err != nil {
				t.Fatal(err)
			}
			if mmio.min < regs || mmio.max >= regs+0x200 {
				t.Fatalf("Reset reached outside ENET1: %#x-%#x", mmio.min, mmio.max)
			}
			if a := testing.AllocsPerRun(2, func() { nic.Reset() }); a != 0 {
				t.Fatalf("Reset allocates: %v per call", a)
			}
			// The count sees an allocation where there is one.
			if a := testing.AllocsPerRun(2, func() { nic.Reset(); sink = make([]byte, 64) }); a != 1 {
				t.Fatalf("negative control: %v allocations counted, want 1", a)
			}
			if eimr := vm.Read32(regs + 0x008); eimr != 0 {
				t.Fatalf("EIMR %#x after the takeover", eimr)
			}
			// Nothing left over goes out: not at the takeover, not
			// with the next doorbell.
			if n := link.Drain(50 * time.Millisecond); n != 0 {
				t.Fatalf("%d frames sent by the takeover", n)
			}
			f := nictest.Frame(400, hostMAC, mac, 0x55)
			if err := nic.Transmit(f); err != nil {
				t.Fatal(err)
			}
			for i := 0; ; i++ {
				got, err := link.Recv(time.Second)
				if err != nil {
					break
				}
				for _, a := range abandoned {
					if bytes.Equal(got, a) {
						t.Fatal("a frame enet left ready went out after the takeover")
					}
				}
				if i > 0 || !bytes.Equal(got, f) {
					t.Fatalf("after the takeover the link got %d bytes %x, want only our frame", len(got), got)
				}
			}
			nictest.Netdump(t, nic, link, 256<<10)
			if !bytes.Equal(readOCRAM(t, vm), ocramBefore) {
				t.Fatal("the controller still wrote to enet's rings or buffers in OCRAM after the takeover")
			}
			if err := vm.Err(); err != nil {
				t.Fatal(err)
			}
		})
	}
}

// readOCRAM reads enet's descriptors and RX buffers, 1 KiB per qtest
// reply.
func readOCRAM(t *testing.T, vm *qemu.VM) []byte {
	var b []byte
	for a := ocram; a < enetTXBuf; a += 1024 {
		rep, err := vm.Command(fmt.Sprintf("read 0x%x 1024", a))
		if err != nil {
			t.Fatal(err)
		}
		chunk, err := hex.DecodeString(strings.TrimPrefix(rep, "OK 0x"))
		if err != nil {
			t.Fatal(err)
		}
		b = append(b, chunk...)
	}
	return b
}
