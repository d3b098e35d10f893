// Package bus defines how drivers reach hardware: memory-mapped registers,
// x86 I/O ports and DMA-capable memory, with Direct for bare metal on
// amd64 and 32-bit ARM. Drivers take these as values so the
// same driver runs on bare metal (direct access) and in tests against QEMU's
// device models (through qtest and a shared guest-RAM file).
package bus

import (
	"errors"
	"fmt"
)

// MMIO reads and writes device registers at physical addresses.
// Implementations order accesses as the device sees them (no reordering
// between calls).
type MMIO interface {
	Read8(addr uint64) uint8
	Read16(addr uint64) uint16
	Read32(addr uint64) uint32
	Write8(addr uint64, v uint8)
	Write16(addr uint64, v uint16)
	Write32(addr uint64, v uint32)
}

// Ports is x86 port I/O (legacy PCI configuration, legacy virtio-pci).
type Ports interface {
	In8(port uint16) uint8
	In16(port uint16) uint16
	In32(port uint16) uint32
	Out8(port uint16, v uint8)
	Out16(port uint16, v uint16)
	Out32(port uint16, v uint32)
}

// DMA is memory a device can reach by bus mastering: Mem[i] is at bus
// address Addr+i. The board hands it out coherent with the devices, so
// drivers do no cache maintenance: on x86 DMA snoops the caches; on ARM
// the board maps the region uncached.
type DMA struct {
	Mem  []byte
	Addr uint64
}

// ErrNoRoom is returned when a region is too small for a carve.
var ErrNoRoom = errors.New("bus: DMA region too small")

// Carve splits off the first size bytes at the given alignment (a power of
// two, in bus addresses) and returns them and the rest. It is meant for
// configuration time: rings and buffer pools are carved once and reused,
// so nothing is allocated after a panic.
func (d DMA) Carve(size, align int) (part, rest DMA, err error) {
	if align <= 0 || align&(align-1) != 0 {
		return DMA{}, d, fmt.Errorf("bus: alignment %d is not a power of two", align)
	}
	pad := int((uint64(align) - d.Addr%uint64(align)) % uint64(align))
	if size < 0 || pad+size > len(d.Mem) {
		return DMA{}, d, fmt.Errorf("%w: need %d bytes (+%d alignment), have %d", ErrNoRoom, size, pad, len(d.Mem))
	}
	part = DMA{Mem: d.Mem[pad : pad+size : pad+size], Addr: d.Addr + uint64(pad)}
	rest = DMA{Mem: d.Mem[pad+size:], Addr: d.Addr + uint64(pad+size)}
	return part, rest, nil
}
