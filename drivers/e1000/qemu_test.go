package e1000_test

import (
	"bytes"
	"encoding/binary"
	"math/rand/v2"
	"strconv"
	"testing"
	"time"

	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/checksum"
	"gvisor.dev/gvisor/pkg/tcpip/header"

	"github.com/tamadump/tamadump/debugnet"
	"github.com/tamadump/tamadump/drivers/e1000"
	"github.com/tamadump/tamadump/drivers/nictest"
	"github.com/tamadump/tamadump/drivers/pci"
	"github.com/tamadump/tamadump/qemu"
)

// rig is an e1000 in QEMU with the driver on it and the host end of its
// link.
type rig struct {
	t    testing.TB
	vm   *qemu.VM
	link *qemu.Link
	nic  *e1000.NIC
	regs uint64
}

var hostMAC = [6]byte{0x02, 0, 0, 0, 0, 1}

func startRig(t testing.TB, machine string) *rig {
	t.Helper()
	vm := qemu.Start(t, qemu.Config{
		Machine: machine,
		RAMMiB:  16,
		Netdevs: []string{"n0"},
		Args:    []string{"-device", "e1000,netdev=n0,mac=52:54:00:12:34:56,addr=4,romfile="},
	})
	cfg := pci.NewPorts(vm)
	alloc := pci.Allocator{Mem: pci.Window{Base: 0xe0000000, End: 0xf0000000}}
	if machine == qemu.MicroVM {
		cfg = pci.NewECAM(vm, pci.MicroVMECAM)
		alloc = pci.Allocator{Mem: pci.Window{Base: 0xc0000000, End: 0xe0000000}}
	}
	d, err := pci.Find(cfg, e1000.VendorID, e1000.DeviceID)
	if err != nil {
		t.Fatal(err)
	}
	bars, err := alloc.Assign(d)
	if err != nil {
		t.Fatal(err)
	}
	bar0, _ := pci.FindBAR(bars, 0)
	if bar0.Size != e1000.BAR0Size {
		t.Fatalf("BAR0 %v", bar0)
	}
	d.Enable(pci.CmdMemory | pci.CmdBusMaster | pci.CmdIntxDisable)
	return &rig{t: t, vm: vm, link: vm.Link("n0"), nic: newNIC(t, vm, bar0.Addr, vm.DMA()), regs: bar0.Addr}
}

// frames is the shared frame checks on this rig.
func (r *rig) frames() nictest.Rig { return nictest.Rig{T: r.t, NIC: r.nic, Link: r.link} }

func (r *rig) out(n int, seed byte) []byte { return nictest.Frame(n, hostMAC, r.nic.MAC(), seed) }
func (r *rig) in(n int, seed byte) []byte  { return nictest.Frame(n, r.nic.MAC(), hostMAC, seed) }

// waitRX waits out QEMU's 1 s pause after an RCTL write by receiving one
// frame.
func (r *rig) waitRX() {
	r.t.Helper()
	r.frames().Inject(r.in(60, 0xee))
}

func TestQEMU(t *testing.T) {
	for _, m := range []string{qemu.PC, qemu.MicroVM} {
		t.Run(m, func(t *testing.T) {
			t.Parallel()
			r := startRig(t, m)
			if r.nic.MAC() != testMAC {
				t.Fatalf("MAC %x, want %x (the -device mac=)", r.nic.MAC(), testMAC)
			}
			if !r.nic.LinkUp() {
				t.Fatal("link down")
			}
			r.checkTX(t)
			r.checkGather(t)
			r.waitRX()
			r.checkRX(t)
			r.checkWrap(t)
			r.checkTXFull(t)
			r.checkResetFromGarbage(t, false)
			r.checkResetFromGarbage(t, true)
			r.checkResetFromOtherDriver(t)
		})
	}
}

func (r *rig) checkTX(t *testing.T) {
	r.frames().SendSizes(r.out)
}

// checkGather sends UDP datagrams whose payload ends in guest RAM the
// device reads in place, their checksum left to it: they arrive whole with
// a valid checksum, also after the checksum's place changes (a new context
// descriptor). The same head sent by Transmit keeps the pseudo-header's
// sum, which is no valid checksum: the control that the device computed it.
func (r *rig) checkGather(t *testing.T) {
	tailAddr := uint64(qemu.DMABase + 12<<20)
	ram := r.vm.RAM()
	for i, c := range []struct{ headPay, tail int }{{24, 1000}, {24, 1448}, {7, 0}, {24, 1}, {2, 300}} {
		tail := nictest.Pattern(c.tail, byte(i))
		copy(ram[tailAddr:], tail)
		head, want := udpFrame(r.nic.MAC(), c.headPay, tail)
		if err := r.nic.QueueGather(head, tailAddr, len(tail), debugnet.Offload{Start: 34, Offset: 6}); err != nil {
			t.Fatal(err)
		}
		r.nic.Flush()
		got, err := r.link.Recv(5 * time.Second)
		if err != nil {
			t.Fatalf("datagram %d: %v", i, err)
		}
		// All but the checksum (bytes 40-41) as sent.
		if len(got) != max(len(want), 60) || !bytes.Equal(got[:40], want[:40]) || !bytes.Equal(got[42:len(want)], want[42:]) {
			t.Fatalf("datagram %d: got %d bytes %x, want %x", i, len(got), got, want)
		}
		if !udpValid(got) {
			t.Fatalf("datagram %d: UDP checksum %#x is not valid", i, binary.BigEndian.Uint16(got[40:]))
		}
	}
	head, want := udpFrame(r.nic.MAC(), 100, nil)
	r.frames().SendAndCheck(head, want)
	if udpValid(want) {
		t.Fatal("the pseudo-header's sum alone passes for a valid checksum: the check above proves nothing")
	}
}

// udpFrame is an IPv4 UDP datagram to the host whose payload is headPay
// bytes of pattern then tail, as head (without tail) and whole, its UDP
// checksum field holding the pseudo-header's sum.
func udpFrame(src [6]byte, headPay int, tail []byte) (head, whole []byte) {
	n := header.UDPMinimumSize + headPay + len(tail)
	f := make([]byte, 14+20+n)
	header.Ethernet(f).Encode(&header.EthernetFields{SrcAddr: tcpip.LinkAddress(src[:]), DstAddr: tcpip.LinkAddress(hostMAC[:]), Type: header.IPv4ProtocolNumber})
	srcIP, dstIP := tcpip.AddrFrom4([4]byte{10, 0, 0, 2}), tcpip.AddrFrom4([4]byte{10, 0, 0, 1})
	ip := header.IPv4(f[14:])
	ip.Encode(&header.IPv4Fields{TotalLength: uint16(20 + n), TTL: 64, Protocol: uint8(header.UDPProtocolNumber), SrcAddr: srcIP, DstAddr: dstIP})
	ip.SetChecksum(^ip.CalculateChecksum())
	u := header.UDP(f[34:])
	u.Encode(&header.UDPFields{SrcPort: 20024, DstPort: 20023, Length: uint16(n)})
	u.SetChecksum(header.PseudoHeaderChecksum(header.UDPProtocolNumber, srcIP, dstIP, uint16(n)))
	copy(f[42:], nictest.Pattern(headPay, 0x77))
	copy(f[42+headPay:], tail)
	return f[:42+headPay], f
}

func udpValid(f []byte) bool {
	ip := header.IPv4(f[14:])
	u := header.UDP(f[34 : 14+ip.TotalLength()])
	return u.IsChecksumValid(ip.SourceAddress(), ip.DestinationAddress(), checksum.Checksum(u.Payload(), 0))
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
	// Broadcast and multicast (an IPv6 solicited-node group's) pass the
	// filter; a foreign unicast does not.
	bcast := nictest.Frame(100, [6]byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}, hostMAC, 1)
	mcast := nictest.Frame(100, [6]byte{0x33, 0x33, 0xff, 0x12, 0x34, 0x56}, hostMAC, 3)
	foreign := nictest.Frame(100, [6]byte{0x02, 9, 9, 9, 9, 9}, hostMAC, 2)
	if err := r.link.Send(foreign); err != nil {
		t.Fatal(err)
	}
	r.frames().Inject(bcast, mcast)
}

// checkWrap runs both rings round three times, with full rings on RX,
// in frames from 60 bytes up to at most 1514.
func (r *rig) checkWrap(t *testing.T) {
	r.frames().Wrap(e1000.RingSize, e1000.RingSize-1, (1514-60)/(e1000.RingSize-1), r.out, r.in)
}

// checkTXFull stops the transmitter behind the driver's back: Transmit
// must fail (not hang) once the ring is full, and Reset must recover.
func (r *rig) checkTXFull(t *testing.T) {
	r.vm.Write32(r.regs+0x400, 0) // TCTL.EN off
	r.frames().FillTX(e1000.RingSize, e1000.ErrTXFull, r.out)
	r.reset(t, false)
}

// rxPause separates QEMU's RCTL pause (1 s) from reception that never
// stopped.
const rxPause = 500 * time.Millisecond

// reset runs Reset and checks the device works again both ways. rewrote
// says whether Reset finds RCTL holding something else: then QEMU pauses
// reception for 1 s (the control that the pause is seen); from our own
// settings reception must go on at once.
func (r *rig) reset(t *testing.T, rewrote bool) {
	t.Helper()
	r.link.Drain(20 * time.Millisecond)
	if err := r.nic.Reset(); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	r.waitRX()
	switch d := time.Since(start); {
	case rewrote && d < rxPause:
		t.Errorf("reception resumed %v after a Reset that wrote RCTL: QEMU's pause is not seen", d)
	case !rewrote && d >= rxPause:
		t.Errorf("reception resumed %v after a Reset from our own settings: RCTL was written again", d)
	}
	if ims := r.vm.Read32(r.regs + 0xd0); ims != 0 {
		t.Errorf("IMS = %#x after Reset", ims)
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

// checkResetFromGarbage scribbles over rings and registers, with RX/TX
// switched off or left on, then Resets. Frames received but not polled
// before the scribbling must not come out afterwards.
func (r *rig) checkResetFromGarbage(t *testing.T, live bool) {
	rng := rand.New(rand.NewPCG(uint64(len(t.Name())), map[bool]uint64{false: 1, true: 2}[live]))
	for i := 0; i < 5; i++ {
		if err := r.link.Send(r.in(200, byte(i))); err != nil {
			t.Fatal(err)
		}
	}
	time.Sleep(20 * time.Millisecond)
	ram := r.vm.RAM()
	scribble := func(balReg uint64) {
		base := uint64(r.vm.Read32(r.regs + balReg))
		for i := range e1000.RingSize * 16 {
			ram[base+uint64(i)] = byte(rng.Uint32())
		}
	}
	if !live {
		r.vm.Write32(r.regs+0x100, 0) // RCTL
		r.vm.Write32(r.regs+0x400, 0) // TCTL
	}
	// Heads first: with RX on, RDH != RDT is harmless only while no frame
	// arrives (none does: the host is quiet). With TX on, TDT is left
	// alone: writing it would make QEMU send the garbage.
	scribble(0x2800)
	scribble(0x3800)
	r.vm.Write32(r.regs+0x2810, rng.Uint32()&0xffff) // RDH
	r.vm.Write32(r.regs+0x2818, rng.Uint32()&0xffff) // RDT
	r.vm.Write32(r.regs+0x3810, rng.Uint32()&0xffff) // TDH
	if !live {
		r.vm.Write32(r.regs+0x3818, rng.Uint32()&0xffff)                  // TDT
		r.vm.Write32(r.regs+0x2800, 0x00f00000|rng.Uint32()&0xfff0)       // RDBAL
		r.vm.Write32(r.regs+0x3800, 0x00e00000|rng.Uint32()&0xfff0)       // TDBAL
		r.vm.Write32(r.regs+0x2808, rng.Uint32()&0xfff80)                 // RDLEN
		r.vm.Write32(r.regs+0x3808, rng.Uint32()&0xfff80)                 // TDLEN
		r.vm.Write32(r.regs+0x5404, 0)                                    // RAH0: no address
		r.vm.Write32(r.regs+0x5200+4*uint64(rng.IntN(128)), rng.Uint32()) // MTA
	}
	r.vm.Write32(r.regs+0xd0, 0xffffffff) // IMS: every interrupt on
	r.reset(t, !live)
}

// checkResetFromOtherDriver leaves the device as a different driver would
// have: its own rings elsewhere, promiscuous long-frame RX with 4 KiB
// buffers and no CRC stripping, VLAN stripping, interrupts on.
func (r *rig) checkResetFromOtherDriver(t *testing.T) {
	other := uint64(qemu.DMABase + 8<<20)
	ram := r.vm.RAM()
	for i := range 64 {
		d := ram[other+uint64(i)*16:]
		binary.LittleEndian.PutUint64(d, other+0x10000+uint64(i)*4096)
		binary.LittleEndian.PutUint64(d[8:], 0)
	}
	w := func(reg uint64, v uint32) { r.vm.Write32(r.regs+reg, v) }
	w(0x0400, 0)
	w(0x2800, uint32(other))
	w(0x2808, 64*16)
	w(0x2810, 5)
	w(0x2818, 3)
	w(0x0100, 1<<1|1<<3|1<<4|1<<5|3<<16|1<<25) // EN UPE MPE LPE BSIZE=4096
	w(0x0000, r.vm.Read32(r.regs)|1<<30)       // CTRL.VME
	w(0x00d0, 0x9d)                            // IMS
	r.reset(t, true)
	// Only our address gets through now (no UPE).
	foreign := nictest.Frame(100, [6]byte{0x02, 9, 9, 9, 9, 9}, hostMAC, 2)
	if err := r.link.Send(foreign); err != nil {
		t.Fatal(err)
	}
	r.frames().Inject(r.in(80, 4))
}

// BenchmarkTransmit blasts frames through the driver into QEMU and counts
// them arriving on the host link. One QEMU for all sizes.
func BenchmarkTransmit(b *testing.B) {
	r := startRig(b, qemu.PC)
	for _, size := range []int{60, 1514} {
		b.Run(strconv.Itoa(size), func(b *testing.B) { nictest.BenchTransmit(b, r.nic, r.link, r.out(size, 1)) })
	}
}

// BenchmarkReceive has the host send frames as fast as QEMU takes them
// while the driver polls.
func BenchmarkReceive(b *testing.B) {
	r := startRig(b, qemu.PC)
	r.waitRX()
	for _, size := range []int{60, 1514} {
		b.Run(strconv.Itoa(size), func(b *testing.B) {
			f := r.in(size, 1)
			sent := make(chan error, 1)
			go func() {
				for i := 0; i < b.N; i++ {
					if err := r.link.Send(f); err != nil {
						sent <- err
						return
					}
				}
				sent <- nil
			}()
			b.SetBytes(int64(size))
			n, bytes := 0, 0
			deadline := time.Now().Add(time.Minute)
			for n < b.N && time.Now().Before(deadline) {
				n += r.nic.Poll(func(f []byte) { bytes += len(f) })
			}
			b.StopTimer()
			if err := <-sent; err != nil {
				b.Fatal(err)
			}
			if n != b.N || bytes != b.N*size {
				b.Fatalf("received %d frames (%d bytes) of %d", n, bytes, b.N)
			}
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "frames/s")
		})
	}
}

// TestNetdump runs a whole netdump through the driver into the netdumpd
// core joined to QEMU's link, on both machines the image uses.
func TestNetdump(t *testing.T) {
	for _, m := range []string{qemu.PC, qemu.MicroVM} {
		t.Run(m, func(t *testing.T) {
			r := startRig(t, m)
			r.waitRX()
			st := nictest.Netdump(t, r.nic, r.link, 512<<10)
			t.Logf("%+v", st)
		})
	}
}

// BenchmarkNetdumpGoodput is the goodput of whole dumps through the driver;
// compare with BenchmarkTransmit/1514.
func BenchmarkNetdumpGoodput(b *testing.B) {
	r := startRig(b, qemu.PC)
	r.waitRX()
	nictest.BenchNetdump(b, r.nic, r.link, 8<<20)
}
