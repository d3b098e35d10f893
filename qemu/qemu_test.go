package qemu

import (
	"encoding/binary"
	"fmt"
	"strings"
	"sync"
	"testing"
)

// pciID reads vendor/device of 00:dev.0 through the legacy ports.
func pciID(vm *VM, dev int) uint32 {
	vm.Out32(0xcf8, 0x80000000|uint32(dev)<<11)
	return vm.In32(0xcfc)
}

func TestPCPortsAndRAM(t *testing.T) {
	vm := Start(t, Config{Machine: PC, RAMMiB: 16, Netdevs: []string{"n0"},
		Args: []string{"-device", "e1000,netdev=n0,addr=4,romfile="}})
	if id := pciID(vm, 0); id != 0x12378086 {
		t.Fatalf("00:00.0 id = %#x, want i440FX 0x12378086", id)
	}
	if got := len(vm.RAM()); got != 16<<20 {
		t.Fatalf("RAM is %d bytes", got)
	}
	d := vm.DMA()
	if d.Addr != DMABase || len(d.Mem) != 15<<20 {
		t.Fatalf("DMA = %#x+%d", d.Addr, len(d.Mem))
	}

	// Host writes are seen by the guest bus and the other way round.
	binary.LittleEndian.PutUint32(d.Mem[0x100:], 0xdeadbeef)
	if v := vm.Read32(d.Addr + 0x100); v != 0xdeadbeef {
		t.Fatalf("readl of host-written RAM = %#x", v)
	}
	vm.Write16(d.Addr+0x200, 0x1234)
	vm.Write8(d.Addr+0x202, 0x56)
	if v := binary.LittleEndian.Uint32(d.Mem[0x200:]); v&0xffffff != 0x561234 {
		t.Fatalf("host view of guest writes = %#x", v)
	}
	if v := vm.Read16(d.Addr + 0x201); v != 0x5612 {
		t.Fatalf("readw = %#x", v)
	}
	if id := pciID(vm, 4); id != 0x100e8086 {
		t.Fatalf("00:04.0 id = %#x, want e1000", id)
	}
	if err := vm.Link("n0").Send(nil); err != ErrEmptyFrame {
		t.Fatalf("empty frame: %v", err)
	}
	if err := vm.Link("n0").Send(make([]byte, 60)); err != nil {
		t.Fatalf("sending to QEMU: %v", err)
	}
	if _, err := vm.Command("no_such_command"); err == nil {
		t.Fatal("unknown command did not fail")
	}
	if err := vm.Err(); err != nil {
		t.Fatal(err)
	}
}

func TestMicroVMECAM(t *testing.T) {
	vm := Start(t, Config{Machine: MicroVM, RAMMiB: 16})
	// GPEX host bridge 1b36:0008 at 00:00.0 in ECAM; no 0xCF8 mechanism.
	if id := vm.Read32(0xe0000000); id != 0x00081b36 {
		t.Fatalf("ECAM 00:00.0 id = %#x, want 0x00081b36", id)
	}
	if id := pciID(vm, 0); id != 0xffffffff {
		t.Fatalf("0xCF8 on microvm gave %#x, want all-ones", id)
	}
	// virtio-mmio v2 by default: slot 23 answers magic "virt", version 2.
	if m, v := vm.Read32(0xfeb02e00), vm.Read32(0xfeb02e04); m != 0x74726976 || v != 2 {
		t.Fatalf("virtio-mmio magic %#x version %d", m, v)
	}
}

// recordTB keeps Errorf messages instead of failing the test.
type recordTB struct {
	testing.TB
	mu   sync.Mutex
	errs []string
}

func (r *recordTB) Errorf(format string, args ...any) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.errs = append(r.errs, fmt.Sprintf(format, args...))
}

func TestDeadQEMUFailsFast(t *testing.T) {
	rec := &recordTB{TB: t}
	vm := Start(rec, Config{Machine: PC, RAMMiB: 16})
	vm.cmd.Process.Kill()
	<-vm.exited
	if v := vm.Read32(0xfee00000); v != 0xffffffff {
		t.Errorf("read from dead QEMU = %#x, want all-ones", v)
	}
	if vm.Err() == nil {
		t.Error("no error recorded")
	}
	if v := vm.In8(0x80); v != 0xff { // later accesses fail at once
		t.Errorf("in from dead QEMU = %#x", v)
	}
	rec.mu.Lock()
	defer rec.mu.Unlock()
	if len(rec.errs) != 1 || !strings.Contains(rec.errs[0], "QEMU exited") {
		t.Errorf("reported errors: %q", rec.errs)
	}
}

func TestStartFailureShowsStderr(t *testing.T) {
	if !Available() {
		t.Skip(Binary + " is not installed")
	}
	_, err := start(t, Config{Args: []string{"-device", "no-such-device"}})
	if err == nil || !strings.Contains(err.Error(), "no-such-device") {
		t.Fatalf("err = %v, want QEMU's complaint about the device", err)
	}
}

// BenchmarkReadl is the cost of one qtest MMIO round trip.
func BenchmarkReadl(b *testing.B) {
	vm := Start(b, Config{Machine: PC, RAMMiB: 16})
	b.ReportAllocs()
	for b.Loop() {
		vm.Read32(DMABase)
	}
}
