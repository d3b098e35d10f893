package pci_test

import (
	"testing"

	"github.com/tamadump/tamadump/drivers/pci"
	"github.com/tamadump/tamadump/qemu"
)

// machines are the platforms the package supports, with the config access
// and windows a board would use on each.
var machines = []struct {
	name    string
	machine string
	config  func(vm *qemu.VM) pci.Config
	alloc   pci.Allocator
}{
	{"pc", qemu.PC, func(vm *qemu.VM) pci.Config { return pci.NewPorts(vm) },
		pci.Allocator{Mem: pci.Window{Base: 0xe0000000, End: 0xf0000000}, IO: pci.Window{Base: 0xc000, End: 0x10000}}},
	{"q35", qemu.Q35, func(vm *qemu.VM) pci.Config { return pci.NewPorts(vm) },
		pci.Allocator{Mem: pci.Window{Base: 0xe0000000, End: 0xf0000000}, IO: pci.Window{Base: 0xc000, End: 0x10000}}},
	{"microvm", qemu.MicroVM, func(vm *qemu.VM) pci.Config { return pci.NewECAM(vm, pci.MicroVMECAM) },
		pci.Allocator{Mem: pci.Window{Base: 0xc0000000, End: 0xe0000000}}},
}

func TestEnumerateAssignEnable(t *testing.T) {
	for _, m := range machines {
		t.Run(m.name, func(t *testing.T) {
			vm := qemu.Start(t, qemu.Config{Machine: m.machine, RAMMiB: 16, Args: []string{
				"-device", "e1000,addr=4,romfile=",
				"-device", "virtio-net-pci,addr=5,romfile=",
			}})
			cfg := m.config(vm)
			all := pci.Enumerate(cfg)
			if len(all) < 3 {
				t.Fatalf("enumerated %v", all)
			}
			for _, d := range all {
				t.Log(d)
			}

			e, err := pci.Find(cfg, 0x8086, 0x100e)
			if err != nil {
				t.Fatal(err)
			}
			if e.Addr != (pci.Addr{Dev: 4}) || e.Class != 0x020000 || e.Header != 0 {
				t.Errorf("e1000: %v header %d", e, e.Header)
			}
			if caps := e.Caps(); len(caps) != 0 {
				t.Errorf("e1000 caps %v, want none", caps)
			}
			alloc := m.alloc
			bars, err := alloc.Assign(e)
			if err != nil {
				t.Fatal(err)
			}
			b0, ok := pci.FindBAR(bars, 0)
			if !ok || b0.IO || b0.Is64 || b0.Size != 128<<10 || b0.Addr != m.alloc.Mem.Base {
				t.Fatalf("e1000 BARs %v", bars)
			}
			if b1, ok := pci.FindBAR(bars, 1); !ok || !b1.IO || b1.Size != 64 {
				t.Errorf("e1000 BARs %v", bars)
			} else if (m.alloc.IO.End == 0) != (b1.Addr == 0) {
				t.Errorf("e1000 I/O BAR %v with I/O window %v", b1, m.alloc.IO)
			}
			// Read back: the BAR holds the assigned address.
			if again, _ := e.BARs(); again[0] != b0 {
				t.Errorf("re-read BAR0 %v, assigned %v", again[0], b0)
			}
			e.Enable(pci.CmdMemory | pci.CmdBusMaster | pci.CmdIntxDisable)
			if cmd := e.Read16(pci.RegCommand); cmd&0x406 != 0x406 {
				t.Errorf("COMMAND = %#x", cmd)
			}
			if st := vm.Read32(b0.Addr + 8); st != 0x80080783 {
				t.Errorf("e1000 STATUS = %#x, want 0x80080783", st)
			}

			v, err := pci.Find(cfg, 0x1af4, 0x1000)
			if err != nil {
				t.Fatal(err)
			}
			bars, err = alloc.Assign(v)
			if err != nil {
				t.Fatal(err)
			}
			b4, ok := pci.FindBAR(bars, 4)
			if !ok || !b4.Is64 || !b4.Prefetch || b4.Size != 16<<10 || b4.Addr == 0 || b4.Addr%b4.Size != 0 {
				t.Fatalf("virtio BARs %v", bars)
			}
			if _, ok := pci.FindBAR(bars, 5); ok {
				t.Errorf("upper half of 64-bit BAR4 listed as a BAR: %v", bars)
			}
			if b1, ok := pci.FindBAR(bars, 1); !ok || b1.Size != 4096 || b1.Addr == 0 || b1.Addr < b0.Addr+b0.Size {
				t.Errorf("virtio BAR1 %v (e1000 BAR0 %v)", b1, b0)
			}
			var vendor []uint8
			for _, c := range v.Caps() {
				if c.ID == pci.CapVendor {
					vendor = append(vendor, v.Read8(c.Off+3)) // cfg_type
				}
			}
			if len(vendor) != 5 {
				t.Errorf("virtio vendor caps with cfg_types %v, want 5", vendor)
			}
			v.Enable(pci.CmdMemory | pci.CmdBusMaster)
			if n := vm.Read16(b4.Addr + 18); n != 3 { // common cfg num_queues
				t.Errorf("virtio num_queues = %d, want 3", n)
			}
		})
	}
}
