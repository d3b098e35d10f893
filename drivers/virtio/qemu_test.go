package virtio

import (
	"bytes"
	"errors"
	"math/rand/v2"
	"strconv"
	"testing"
	"time"

	"github.com/tamadump/tamadump/drivers/bus"
	"github.com/tamadump/tamadump/drivers/nictest"
	"github.com/tamadump/tamadump/drivers/pci"
	"github.com/tamadump/tamadump/mbufpool"
	"github.com/tamadump/tamadump/qemu"
)

// mmioBase is where microvm puts the first virtio-mmio device.
const mmioBase = 0xfeb02e00

var (
	testMAC = [6]byte{0x52, 0x54, 0x00, 0x12, 0x34, 0x56}
	hostMAC = [6]byte{0x02, 0, 0, 0, 0, 1}
)

// transports are the QEMU set-ups the tests and benchmarks run on.
var transports = []struct {
	name   string
	hdrLen int
	start  func(t testing.TB) (*qemu.VM, func(bus.DMA, *mbufpool.Pool) (*NIC, error))
}{
	{"pci-modern", modernHdrLen, func(t testing.TB) (*qemu.VM, func(bus.DMA, *mbufpool.Pool) (*NIC, error)) {
		vm := startVM(t, qemu.PC, false, "virtio-net-pci,disable-legacy=on,addr=5,romfile=")
		d, bars := pciDevice(t, vm, PCIDeviceModern, pci.CmdMemory)
		regs, err := FindPCIRegs(d, bars)
		if err != nil {
			t.Fatal(err)
		}
		return vm, func(rings bus.DMA, pool *mbufpool.Pool) (*NIC, error) {
			return NewPCI(vm, regs, rings, pool, Options{QueueSize: 64})
		}
	}},
	{"pci-legacy", legacyHdrLen, func(t testing.TB) (*qemu.VM, func(bus.DMA, *mbufpool.Pool) (*NIC, error)) {
		vm := startVM(t, qemu.PC, false, "virtio-net-pci,addr=5,romfile=")
		d, bars := pciDevice(t, vm, PCIDeviceTransitional, pci.CmdIO)
		io, err := LegacyIOBase(d, bars)
		if err != nil {
			t.Fatal(err)
		}
		return vm, func(rings bus.DMA, pool *mbufpool.Pool) (*NIC, error) {
			return NewLegacyPCI(vm, io, rings, pool, Options{})
		}
	}},
	{"mmio-v1", legacyHdrLen, func(t testing.TB) (*qemu.VM, func(bus.DMA, *mbufpool.Pool) (*NIC, error)) {
		vm := startVM(t, qemu.MicroVM, true, "virtio-net-device")
		return vm, func(rings bus.DMA, pool *mbufpool.Pool) (*NIC, error) {
			return NewMMIO(vm, mmioBase, rings, pool, Options{QueueSize: 64})
		}
	}},
	{"mmio-v2", modernHdrLen, func(t testing.TB) (*qemu.VM, func(bus.DMA, *mbufpool.Pool) (*NIC, error)) {
		vm := startVM(t, qemu.MicroVM, false, "virtio-net-device")
		return vm, func(rings bus.DMA, pool *mbufpool.Pool) (*NIC, error) {
			return NewMMIO(vm, mmioBase, rings, pool, Options{QueueSize: 64})
		}
	}},
	// Legacy without ANY_LAYOUT: the header gets its own descriptor.
	{"mmio-v1-split-header", legacyHdrLen, func(t testing.TB) (*qemu.VM, func(bus.DMA, *mbufpool.Pool) (*NIC, error)) {
		vm := startVM(t, qemu.MicroVM, true, "virtio-net-device,any_layout=off")
		return vm, func(rings bus.DMA, pool *mbufpool.Pool) (*NIC, error) {
			return NewMMIO(vm, mmioBase, rings, pool, Options{QueueSize: 64})
		}
	}},
}

func startVM(t testing.TB, machine string, legacyMMIO bool, dev string) *qemu.VM {
	t.Helper()
	return qemu.Start(t, qemu.Config{
		Machine:          machine,
		RAMMiB:           16,
		LegacyVirtioMMIO: legacyMMIO,
		Netdevs:          []string{"n0"},
		Args:             []string{"-device", dev + ",netdev=n0,mac=52:54:00:12:34:56"},
	})
}

// pciDevice finds the virtio-net function on pc, assigns its BARs and
// enables decoding and bus mastering.
func pciDevice(t testing.TB, vm *qemu.VM, id uint16, decode uint16) (pci.Device, []pci.BAR) {
	t.Helper()
	cfg := pci.NewPorts(vm)
	d, err := pci.Find(cfg, PCIVendor, id)
	if err != nil {
		t.Fatal(err)
	}
	alloc := pci.Allocator{Mem: pci.Window{Base: 0xe0000000, End: 0xf0000000}, IO: pci.Window{Base: 0xc000, End: 0x10000}}
	bars, err := alloc.Assign(d)
	if err != nil {
		t.Fatal(err)
	}
	d.Enable(decode | pci.CmdBusMaster | pci.CmdIntxDisable)
	return d, bars
}

// rig is a virtio-net device in QEMU with the driver on it.
type rig struct {
	t      testing.TB
	vm     *qemu.VM
	link   *qemu.Link
	nic    *NIC
	hdrLen int
}

func startRig(t testing.TB, i int) *rig {
	t.Helper()
	tr := transports[i]
	vm, newNIC := tr.start(t)
	rings, rest, err := vm.DMA().Carve(RingBytes(256), 4096)
	if err != nil {
		t.Fatal(err)
	}
	region, _, err := rest.Carve(2<<20, 4096)
	if err != nil {
		t.Fatal(err)
	}
	pool, err := mbufpool.New(region, 2048)
	if err != nil {
		t.Fatal(err)
	}
	nic, err := newNIC(rings, pool)
	if err != nil {
		t.Fatal(err)
	}
	return &rig{t: t, vm: vm, link: vm.Link("n0"), nic: nic, hdrLen: tr.hdrLen}
}

func (r *rig) out(n int, seed byte) []byte { return nictest.Frame(n, hostMAC, r.nic.MAC(), seed) }
func (r *rig) in(n int, seed byte) []byte  { return nictest.Frame(n, r.nic.MAC(), hostMAC, seed) }

func (r *rig) transmit(f []byte) {
	r.t.Helper()
	if err := r.nic.Transmit(f); err != nil {
		r.t.Fatalf("Transmit %d bytes: %v", len(f), err)
	}
}

func (r *rig) expect(want []byte) {
	r.t.Helper()
	got, err := r.link.Recv(5 * time.Second)
	if err != nil {
		r.t.Fatalf("host did not receive the %d-byte frame: %v", len(want), err)
	}
	if !bytes.Equal(got, want) {
		r.t.Fatalf("host got %d bytes:\n%x\nwant %d bytes\n%x", len(got), got, len(want), want)
	}
}

// receive polls until n frames came (copies), checking each used length
// is header + frame, and fails after timeout.
func (r *rig) receive(n int, timeout time.Duration) [][]byte {
	r.t.Helper()
	var got [][]byte
	deadline := time.Now().Add(timeout)
	for len(got) < n {
		if r.nic.Poll(func(f []byte) {
			if _, l := r.nic.rx.usedElem(r.nic.rx.lastUsed - 1); int(l) != r.hdrLen+len(f) {
				r.t.Errorf("used length %d for a %d-byte frame, want header %d + frame", l, len(f), r.hdrLen)
			}
			got = append(got, append([]byte(nil), f...))
		}) == 0 {
			if time.Now().After(deadline) {
				r.t.Fatalf("polled %d of %d frames in %v", len(got), n, timeout)
			}
			time.Sleep(100 * time.Microsecond)
		}
	}
	return got
}

// inject sends frames from the host while polling, and checks they all
// arrive byte-exact, in order, and nothing else does.
func (r *rig) inject(frames ...[]byte) {
	r.t.Helper()
	sent := make(chan error, 1)
	go func() {
		for _, f := range frames {
			if err := r.link.Send(f); err != nil {
				sent <- err
				return
			}
		}
		sent <- nil
	}()
	got := r.receive(len(frames), 10*time.Second)
	if err := <-sent; err != nil {
		r.t.Fatal(err)
	}
	for i := range frames {
		if !bytes.Equal(got[i], frames[i]) {
			r.t.Fatalf("frame %d: received %d bytes %x, want %d bytes %x", i, len(got[i]), got[i], len(frames[i]), frames[i])
		}
	}
	if extra := r.nic.Poll(func([]byte) {}); extra != 0 {
		r.t.Fatalf("%d unexpected frames", extra)
	}
}

// blast transmits frames while the host receives them, and checks they
// all arrive byte-exact and in order.
func (r *rig) blast(frames [][]byte) {
	r.t.Helper()
	got := make(chan error, 1)
	go func() {
		buf := make([]byte, qemu.MaxFrame)
		for i, f := range frames {
			n, err := r.link.RecvInto(buf, 5*time.Second)
			if err != nil {
				got <- err
				return
			}
			if !bytes.Equal(buf[:n], f) {
				got <- errors.New("frame " + strconv.Itoa(i) + " differs")
				return
			}
		}
		got <- nil
	}()
	for _, f := range frames {
		r.transmit(f)
	}
	if err := <-got; err != nil {
		r.t.Fatal(err)
	}
}

var sizes = []int{60, 61, 64, 65, 100, 127, 128, 255, 256, 511, 512, 777, 1000, 1023, 1024, 1499, 1500, 1513, 1514}

func TestQEMU(t *testing.T) {
	// One QEMU at a time: the machine is small and shared.
	for i, tr := range transports {
		t.Run(tr.name, func(t *testing.T) {
			r := startRig(t, i)
			if r.nic.MAC() != testMAC {
				t.Fatalf("MAC %x, want %x (the -device mac=)", r.nic.MAC(), testMAC)
			}
			if r.nic.HeaderLen() != tr.hdrLen {
				t.Fatalf("header length %d, want %d", r.nic.HeaderLen(), tr.hdrLen)
			}
			if !r.nic.LinkUp() {
				t.Fatal("link down")
			}
			r.checkTX(t)
			r.checkRX(t)
			r.checkWrap(t)
			r.checkTXFull(t)
			r.checkResetFromGarbage(t, 1, true)
			r.checkResetFromGarbage(t, 2, false)
			r.checkResetMidSetup(t)
			r.checkNoAllocs(t)
		})
	}
}

func (r *rig) checkTX(t *testing.T) {
	for i, n := range sizes {
		f := r.out(n, byte(i))
		r.transmit(f)
		r.expect(f)
	}
	// Short frames leave zero-padded to the Ethernet minimum.
	f := r.out(42, 9)
	r.transmit(f)
	r.expect(append(append([]byte(nil), f...), make([]byte, 18)...))
	if err := r.nic.Transmit(nil); !errors.Is(err, ErrFrameSize) {
		t.Errorf("empty frame: %v", err)
	}
	if err := r.nic.Transmit(make([]byte, 1515)); !errors.Is(err, ErrFrameSize) {
		t.Errorf("1515-byte frame: %v", err)
	}
}

func (r *rig) checkRX(t *testing.T) {
	var fs [][]byte
	for i, n := range sizes {
		fs = append(fs, r.in(n, byte(i)))
	}
	r.inject(fs...)
	// Runts are delivered as they are (no padding in virtio-net).
	r.inject(r.in(20, 1), r.in(14, 2))
}

// checkWrap runs both rings round at least three times.
func (r *rig) checkWrap(t *testing.T) {
	n := 3*max(len(r.nic.txBuf), len(r.nic.rxBuf)) + 7
	var out, in [][]byte
	for i := range n {
		out = append(out, r.out(60+i*37%1455, byte(i)))
		in = append(in, r.in(60+i*53%1455, byte(i+1)))
	}
	r.blast(out)
	r.inject(in...)
}

// checkTXFull lets the host stop reading: QEMU can then not send, the
// ring fills, and Transmit must fail (not hang). Once the host reads
// again, every frame accepted before comes out, in order.
func (r *rig) checkTXFull(t *testing.T) {
	var sent [][]byte
	var err error
	// The host socket takes net.unix.max_dgram_qlen frames (10 by
	// default, 512 where systemd sets it) before QEMU has to wait.
	for i := 0; i < len(r.nic.txBuf)+4096 && err == nil; i++ {
		f := r.out(100+i, byte(i))
		if err = r.nic.Transmit(f); err == nil {
			sent = append(sent, f)
		}
	}
	t.Logf("ErrTXFull after %d frames (%d TX slots)", len(sent), len(r.nic.txBuf))
	if !errors.Is(err, ErrTXFull) || len(sent) < len(r.nic.txBuf) {
		t.Fatalf("after %d frames with the host not reading: %v", len(sent), err)
	}
	for i, f := range sent {
		got, err := r.link.Recv(5 * time.Second)
		if err != nil || !bytes.Equal(got, f) {
			t.Fatalf("frame %d of %d after the stall: %v", i, len(sent), err)
		}
	}
	if n := r.link.Drain(20 * time.Millisecond); n != 0 {
		t.Fatalf("%d extra frames", n)
	}
	f := r.out(1514, 7)
	r.transmit(f)
	r.expect(f)
}

// works checks the device works both ways after a Reset.
func (r *rig) works(t *testing.T) {
	t.Helper()
	for i, n := range []int{60, 1514, 333} {
		f := r.out(n, byte(0x40+i))
		r.transmit(f)
		r.expect(f)
	}
	if n := r.link.Drain(20 * time.Millisecond); n != 0 {
		t.Fatalf("%d stray frames on the link", n)
	}
	r.inject(r.in(1514, 1), r.in(60, 2), r.in(700, 3))
}

// checkResetFromGarbage leaves received frames unpolled, scribbles over both queues' rings and the driver's indexes,
// optionally notifies the device into the garbage (QEMU then flags the
// device broken), and Resets. Frames from before must not come out
// afterwards.
func (r *rig) checkResetFromGarbage(t *testing.T, seed uint64, notify bool) {
	rng := rand.New(rand.NewPCG(seed, uint64(r.hdrLen)))
	for i := range 5 {
		if err := r.link.Send(r.in(200, byte(i))); err != nil {
			t.Fatal(err)
		}
	}
	for i := range 3 {
		f := r.out(300, byte(i))
		r.transmit(f)
		r.expect(f)
	}
	// Wait until the 5 frames are in the RX ring, unpolled.
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(time.Millisecond) {
		if _, idx := r.nic.rx.device(); idx-r.nic.rx.lastUsed == 5 {
			break
		} else if time.Now().After(deadline) {
			t.Fatalf("%d of 5 frames arrived", idx-r.nic.rx.lastUsed)
		}
	}
	lo, hi := uint64(qemu.DMABase), uint64(len(r.vm.RAM())-4096)
	for _, q := range []*queue{&r.nic.rx, &r.nic.tx} {
		for i := range int(q.size) {
			// Descriptors point into guest RAM, so a device that follows
			// them writes nowhere but RAM.
			a := lo + rng.Uint64N(hi-lo)
			q.setDesc(i, a, rng.Uint32N(8192), uint16(rng.UintN(8)), uint16(rng.UintN(1<<16)))
		}
		for _, b := range [][]byte{q.avail, q.used} {
			for i := range b {
				b[i] = byte(rng.Uint32())
			}
		}
		q.nextAvail, q.lastUsed = uint16(rng.Uint32()), uint16(rng.Uint32())
	}
	for s := range r.nic.txBusy {
		r.nic.txBusy[s] = rng.UintN(2) == 0
	}
	r.nic.txFree = r.nic.txFree[:0]
	if notify {
		r.nic.t.notify(queueTX)
		r.nic.t.notify(queueRX)
		time.Sleep(10 * time.Millisecond)
		t.Logf("status after notifying into garbage: %#x", r.nic.t.status())
	}
	r.link.Drain(20 * time.Millisecond)

	if err := r.nic.Reset(); err != nil {
		t.Fatal(err)
	}
	time.Sleep(10 * time.Millisecond)
	if n := r.nic.Poll(func([]byte) {}); n != 0 {
		t.Fatalf("%d frames from before the Reset came out", n)
	}
	r.works(t)
}

// checkResetMidSetup leaves the device as an interrupted set-up would:
// features acknowledged, a queue half programmed with another size.
func (r *rig) checkResetMidSetup(t *testing.T) {
	tr := r.nic.t
	tr.setStatus(0)
	tr.setStatus(statusAck | statusDriver)
	tr.setDriverFeatures(tr.deviceFeatures())
	if !tr.sizeFixed() {
		tr.setupQueue(queueRX, 16, qemu.DMABase+12<<20, qemu.DMABase+12<<20+256, qemu.DMABase+12<<20+4096)
	}
	if err := r.nic.Reset(); err != nil {
		t.Fatal(err)
	}
	r.works(t)
}

// checkNoAllocs: Reset, Poll and Transmit allocate nothing on the real
// transports either (the harness's accesses do not allocate; the fake
// device tests measure the driver alone). The host does not read while
// Transmit is measured: 21 frames fit in every ring.
func (r *rig) checkNoAllocs(t *testing.T) {
	f := r.out(1514, 5)
	for _, c := range []struct {
		name string
		fn   func()
	}{
		{"Reset", func() {
			if err := r.nic.Reset(); err != nil {
				t.Fatal(err)
			}
		}},
		{"Poll", func() { r.nic.Poll(func([]byte) {}) }},
		{"Transmit", func() {
			if err := r.nic.Transmit(f); err != nil {
				t.Fatal(err)
			}
		}},
	} {
		a := testing.AllocsPerRun(20, c.fn)
		for try := 0; try < 2 && a != 0 && c.name != "Transmit"; try++ {
			a = testing.AllocsPerRun(20, c.fn) // a stray runtime allocation
		}
		if a != 0 {
			t.Errorf("%s: %v allocations per call", c.name, a)
		}
	}
	if n := r.link.Drain(50 * time.Millisecond); n != 21 {
		t.Errorf("host got %d of the 21 frames", n)
	}
}

// BenchmarkTransmit blasts frames through each transport into QEMU and
// counts them arriving on the host link. One QEMU at a time.
func BenchmarkTransmit(b *testing.B) {
	for i, tr := range transports {
		b.Run(tr.name, func(b *testing.B) {
			r := startRig(b, i)
			for _, size := range []int{60, 1514} {
				b.Run(strconv.Itoa(size), func(b *testing.B) { nictest.BenchTransmit(b, r.nic, r.link, r.out(size, 1)) })
			}
		})
	}
}

// TestNetdump runs a whole netdump through each transport into the
// netdumpd core joined to QEMU's link.
func TestNetdump(t *testing.T) {
	for i, tr := range transports {
		t.Run(tr.name, func(t *testing.T) {
			r := startRig(t, i)
			st := nictest.Netdump(t, r.nic, r.link, 512<<10)
			t.Logf("%+v", st)
		})
	}
}

// BenchmarkNetdumpGoodput is the goodput of whole dumps through each
// transport; compare with BenchmarkTransmit/<transport>/1514.
func BenchmarkNetdumpGoodput(b *testing.B) {
	for i, tr := range transports {
		b.Run(tr.name, func(b *testing.B) {
			r := startRig(b, i)
			nictest.BenchNetdump(b, r.nic, r.link, 8<<20)
		})
	}
}
