//go:build arm

package bus

import (
	"testing"
	"unsafe"
)

// TestDirectARM runs Direct on ordinary memory (under qemu-arm, started
// by TestARMUnderQEMU): each access has its width, lands at its address,
// and leaves the neighbouring bytes alone.
func TestDirectARM(t *testing.T) {
	var mem [64]byte
	for i := range mem {
		mem[i] = 0xee
	}
	base := uint64(uintptr(unsafe.Pointer(&mem[0])))
	base = (base + 7) &^ 7
	off := int(base - uint64(uintptr(unsafe.Pointer(&mem[0]))))
	var d Direct
	d.Write32(base+8, 0x11223344)
	d.Write16(base+16, 0x5566)
	d.Write8(base+21, 0x77)
	want := map[int]byte{8: 0x44, 9: 0x33, 10: 0x22, 11: 0x11, 16: 0x66, 17: 0x55, 21: 0x77}
	for i := 0; i < 32; i++ {
		w, ok := want[i]
		if !ok {
			w = 0xee
		}
		if mem[off+i] != w {
			t.Fatalf("byte %d = %#x, want %#x (memory %x)", i, mem[off+i], w, mem[off:off+32])
		}
	}
	if v := d.Read32(base + 8); v != 0x11223344 {
		t.Fatalf("Read32 = %#x", v)
	}
	if v := d.Read16(base + 16); v != 0x5566 {
		t.Fatalf("Read16 = %#x", v)
	}
	if v := d.Read8(base + 21); v != 0x77 {
		t.Fatalf("Read8 = %#x", v)
	}
	if v := d.Read16(base + 10); v != 0x1122 {
		t.Fatalf("Read16 inside a word = %#x", v)
	}
}
