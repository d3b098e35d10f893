package microvm

import (
	"strings"
	"testing"
	"time"

	"github.com/tamadump/tamadump/drivers/nictest"
	"github.com/tamadump/tamadump/qemu"
)

var testMAC = [6]byte{0x52, 0x54, 0x00, 0x12, 0x34, 0x56}

// TestFind boots microvm (pcie=on, as the image runs) with each NIC the
// image supports and checks that Find picks it and that it carries a frame.
func TestFind(t *testing.T) {
	for _, tc := range []struct {
		dev, name, desc string
		legacy          bool
	}{
		{"virtio-net-device", "vtnet0", "virtio-mmio v1 at 0xfeb02e00", true},
		{"virtio-net-device", "vtnet0", "virtio-mmio v2 at 0xfeb02e00", false},
		{"virtio-net-pci,disable-legacy=on", "vtnet0", "virtio-net-pci at PCI", false},
		{"virtio-net-pci", "vtnet0", "virtio-net-pci at PCI", false},
		{"e1000", "em0", "e1000 (82540EM) at PCI 00:01.0", false},
	} {
		t.Run(tc.dev+map[bool]string{true: "/legacy"}[tc.legacy], func(t *testing.T) {
			vm := qemu.Start(t, qemu.Config{
				Machine: qemu.MicroVM, RAMMiB: 16, LegacyVirtioMMIO: tc.legacy,
				Netdevs: []string{"n0"},
				Args:    []string{"-device", tc.dev + ",netdev=n0,mac=52:54:00:12:34:56"},
			})
			f, err := Find(vm, vm.DMA(), "")
			if err != nil {
				t.Fatal(err)
			}
			if f.Name != tc.name || !strings.Contains(f.Desc, tc.desc) || f.NIC.MAC() != testMAC {
				t.Fatalf("found %s (%s) %x", f.Name, f.Desc, f.NIC.MAC())
			}
			out := nictest.Frame(200, [6]byte{2, 0, 0, 0, 0, 1}, testMAC, 3)
			if err := f.NIC.Transmit(out); err != nil {
				t.Fatal(err)
			}
			got, err := vm.Link("n0").Recv(5 * time.Second)
			if err != nil || string(got) != string(out) {
				t.Fatalf("frame on the link: %v", err)
			}
			if _, err := Find(vm, vm.DMA(), "em7"); err == nil || !strings.Contains(err.Error(), "have "+tc.name) {
				t.Fatalf("asking for a missing NIC: %v", err)
			}
		})
	}
}

func TestNoNIC(t *testing.T) {
	vm := qemu.Start(t, qemu.Config{Machine: qemu.MicroVM, RAMMiB: 16})
	if _, err := Find(vm, vm.DMA(), ""); err != ErrNoNIC {
		t.Fatalf("Find on a machine without NIC: %v", err)
	}
}
