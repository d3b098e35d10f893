package imxenet_test

import (
	"errors"
	"math/rand/v2"
	"strconv"
	"testing"
	"time"

	"github.com/tamadump/tamadump/drivers/bus"
	"github.com/tamadump/tamadump/drivers/imxenet"
	"github.com/tamadump/tamadump/drivers/nictest"
	"github.com/tamadump/tamadump/mbufpool"
	"github.com/tamadump/tamadump/qemu"
)

var (
	testMAC = [6]byte{0x52, 0x54, 0x00, 0x12, 0x34, 0x56}
	hostMAC = [6]byte{0x02, 0, 0, 0, 0, 1}
)

const regs = imxenet.ENET1Addr

// rig is the i.MX6UL EVK's ENET1 in QEMU with the driver on it and the
// host end of its link.
type rig struct {
	t    testing.TB
	vm   *qemu.VM
	link *qemu.Link
	nic  *imxenet.NIC
}

// memory carves the driver's rings and buffer pool from mem.
func memory(t testing.TB, mem bus.DMA) (bus.DMA, *mbufpool.Pool) {
	t.Helper()
	rings, rest, err := mem.Carve(imxenet.RingBytes+imxenet.RingAlign, imxenet.RingAlign)
	if err != nil {
		t.Fatal(err)
	}
	bufs, _, err := rest.Carve(imxenet.BuffersNeeded*imxenet.BufSize+mbufpool.Align, mbufpool.Align)
	if err != nil {
		t.Fatal(err)
	}
	pool, err := mbufpool.New(bufs, imxenet.BufSize)
	if err != nil {
		t.Fatal(err)
	}
	return rings, pool
}

func newNIC(t testing.TB, mmio bus.MMIO, mem bus.DMA) *imxenet.NIC {
	t.Helper()
	rings, pool := memory(t, mem)
	nic, err := imxenet.New(mmio, regs, rings, pool)
	if err != nil {
		t.Fatal(err)
	}
	return nic
}

func startRig(t testing.TB) *rig {
	t.Helper()
	vm := qemu.Start(t, qemu.Config{
		Machine: qemu.MCIMX6ULEVK,
		RAMMiB:  16,
		Netdevs: []string{"n0"},
		Args:    []string{"-net", "nic,netdev=n0,macaddr=52:54:00:12:34:56"},
	})
	return &rig{t: t, vm: vm, link: vm.Link("n0"), nic: newNIC(t, vm, vm.DMA())}
}

// frames is the shared frame checks on this rig.
func (r *rig) frames() nictest.Rig { return nictest.Rig{T: r.t, NIC: r.nic, Link: r.link} }

func (r *rig) out(n int, seed byte) []byte { return nictest.Frame(n, hostMAC, r.nic.MAC(), seed) }
func (r *rig) in(n int, seed byte) []byte  { return nictest.Frame(n, r.nic.MAC(), hostMAC, seed) }

func TestQEMU(t *testing.T) {
	r := startRig(t)
	if r.nic.MAC() != testMAC {
		t.Fatalf("MAC %x, want %x (the -net nic macaddr=)", r.nic.MAC(), testMAC)
	}
	if !r.nic.LinkUp() {
		t.Fatal("link down")
	}
	if eimr := r.vm.Read32(regs + 0x008); eimr != 0 {
		t.Fatalf("EIMR = %#x", eimr)
	}
	r.checkTX(t)
	r.checkRX(t)
	r.checkWrap(t)
	r.checkNoAllocs(t)
	r.checkTXFull(t)
	r.checkResetFromGarbage(t, false)
	r.checkResetFromGarbage(t, true)
	if err := r.vm.Err(); err != nil {
		t.Fatal(err)
	}
}

func (r *rig) checkTX(t *testing.T) {
	r.frames().SendSizes(r.out)
	if err := r.nic.Transmit(make([]byte, 1515)); !errors.Is(err, imxenet.ErrFrameSize) {
		t.Fatalf("1515-byte frame: %v", err)
	}
}

func (r *rig) checkRX(t *testing.T) {
	var fs [][]byte
	for i, n := range nictest.Sizes {
		fs = append(fs, r.in(n, byte(i)))
		if len(fs) == 8 {
			r.frames().Inject(fs...)
			fs = nil
		}
	}
	r.frames().Inject(fs...)
	// Broadcast and multicast pass the filter (an IPv6 neighbour
	// solicitation for fd00:9::2 goes to its solicited-node group
	// 33:33:ff:00:00:02); unicast to another station does not, even one
	// whose address is one bit from ours.
	bcast := nictest.Frame(100, [6]byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}, hostMAC, 1)
	solicit := nictest.Frame(86, [6]byte{0x33, 0x33, 0xff, 0, 0, 2}, hostMAC, 5)
	ours := r.nic.MAC()
	for _, dst := range [][6]byte{{0x02, 9, 9, 9, 9, 9}, {ours[0], ours[1], ours[2], ours[3], ours[4], ours[5] ^ 1}} {
		if err := r.link.Send(nictest.Frame(100, dst, hostMAC, 2)); err != nil {
			t.Fatal(err)
		}
	}
	r.frames().Inject(bcast, solicit)
	// A frame longer than 1514 bytes is dropped, and the next one is fine.
	if err := r.link.Send(r.in(1600, 3)); err != nil {
		t.Fatal(err)
	}
	r.frames().Inject(r.in(1514, 4))
}

// checkWrap runs both rings round several times, with full rings on RX.
func (r *rig) checkWrap(t *testing.T) {
	r.frames().Wrap(imxenet.RingSize, imxenet.RingSize+5, 38, r.out, r.in)
}

// checkNoAllocs: the panic-time paths must not touch the heap.
func (r *rig) checkNoAllocs(t *testing.T) {
	f := r.out(1514, 7)
	nictest.NoAllocs(t, "Transmit", func() {
		if err := r.nic.Transmit(f); err != nil {
			t.Fatal(err)
		}
	})
	r.link.Drain(50 * time.Millisecond)
	for i := 0; i < 10; i++ {
		if err := r.link.Send(r.in(200, byte(i))); err != nil {
			t.Fatal(err)
		}
	}
	time.Sleep(20 * time.Millisecond)
	n := 0
	fn := func(f []byte) { n += len(f) }
	nictest.NoAllocs(t, "Poll", func() { r.nic.Poll(fn) })
	if n != 10*200 {
		t.Fatalf("polled %d bytes, want 2000", n)
	}
	r.frames().SendAndCheck(r.out(100, 1), r.out(100, 1))
	r.frames().Inject(r.in(100, 1))
}

// checkTXFull switches the controller off behind the driver's back:
// Transmit must fail (not hang) once the ring is full, and Reset recover.
func (r *rig) checkTXFull(t *testing.T) {
	r.vm.Write32(regs+0x024, r.vm.Read32(regs+0x024)&^2) // ECR.ETHEREN off
	r.frames().FillTX(imxenet.RingSize, imxenet.ErrTXFull, r.out)
	r.reset(t)
}

// reset runs Reset and checks the controller works again both ways.
func (r *rig) reset(t *testing.T) {
	t.Helper()
	r.link.Drain(20 * time.Millisecond)
	if err := r.nic.Reset(); err != nil {
		t.Fatal(err)
	}
	if eimr := r.vm.Read32(regs + 0x008); eimr != 0 {
		t.Errorf("EIMR = %#x after Reset", eimr)
	}
	if r.nic.MAC() != testMAC || r.vm.Read32(regs+0xe4) != 0x52540012 {
		t.Errorf("MAC %x PALR %#x after Reset", r.nic.MAC(), r.vm.Read32(regs+0xe4))
	}
	for i, n := range []int{60, 1514, 333} {
		f := r.out(n, byte(0x40+i))
		r.frames().SendAndCheck(f, f)
	}
	if n := r.link.Drain(20 * time.Millisecond); n != 0 {
		t.Fatalf("%d stray frames on the link", n)
	}
	r.frames().Inject(r.in(1514, 1), r.in(60, 2), r.in(700, 3))
}

// checkResetFromGarbage scribbles over rings and registers, with the
// controller switched off or left running, then Resets. Frames received
// but not polled before the scribbling must not come out afterwards.
func (r *rig) checkResetFromGarbage(t *testing.T, live bool) {
	rng := rand.New(rand.NewPCG(7, map[bool]uint64{false: 1, true: 2}[live]))
	for i := 0; i < 5; i++ {
		if err := r.link.Send(r.in(200, byte(i))); err != nil {
			t.Fatal(err)
		}
	}
	time.Sleep(20 * time.Millisecond)
	ram, base := r.vm.RAM(), r.vm.RAMBase()
	scribble := func(startReg uint64) {
		start := uint64(r.vm.Read32(regs+startReg)) - base
		for i := range imxenet.RingSize * 8 {
			ram[start+uint64(i)] = byte(rng.Uint32())
		}
	}
	scribble(0x180) // RX ring
	scribble(0x184) // TX ring
	w := func(reg uint64, v uint32) { r.vm.Write32(regs+reg, v) }
	if !live {
		w(0x024, 0xf0000000) // ECR: off
	}
	// Unused memory for the ring pointers: 15 MiB into RAM. With the
	// controller running TDAR is left alone: it would send the garbage.
	w(0x180, uint32(base)+0x00f00000+rng.Uint32()&0xfff8) // RDSR
	w(0x184, uint32(base)+0x00f10000+rng.Uint32()&0xfff8) // TDSR
	if !live {
		w(0x014, 1) // TDAR
	}
	w(0x0e4, rng.Uint32())    // PALR (QEMU's reset restores this one)
	w(0x084, rng.Uint32())    // RCR
	w(0x188, rng.Uint32())    // MRBR
	w(0x008, 0xffffffff)      // EIMR: every interrupt on
	w(0x024, 0xf0000002|1<<4) // ECR: enhanced descriptors
	r.reset(t)
}

// BenchmarkTransmit blasts frames through the driver into QEMU and counts
// them arriving on the host link. One QEMU for all sizes.
func BenchmarkTransmit(b *testing.B) {
	r := startRig(b)
	for _, size := range []int{60, 1514} {
		b.Run(strconv.Itoa(size), func(b *testing.B) { nictest.BenchTransmit(b, r.nic, r.link, r.out(size, 1)) })
	}
}

// TestNetdump runs a whole netdump through the driver into the netdumpd
// core joined to QEMU's link.
func TestNetdump(t *testing.T) {
	r := startRig(t)
	st := nictest.Netdump(t, r.nic, r.link, 256<<10)
	t.Logf("%+v", st)
}

// BenchmarkNetdumpGoodput is the goodput of whole dumps through the driver;
// compare with BenchmarkTransmit/1514.
func BenchmarkNetdumpGoodput(b *testing.B) {
	r := startRig(b)
	nictest.BenchNetdump(b, r.nic, r.link, 8<<20)
}
