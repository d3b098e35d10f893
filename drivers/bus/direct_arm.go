//go:build arm

package bus

// Direct reaches hardware from bare metal on 32-bit ARM (the i.MX6's
// Cortex-A7): MMIO at physical addresses, identity-mapped as device memory
// by the board, through the low 32 bits of the address. Every access is
// one LDR/STR of the stated width in an assembly function, so the compiler
// can neither reorder it with other memory accesses nor split or merge it.
//
// ARMv7 orders device accesses among themselves but not against ordinary
// memory, which is what DMA descriptors and buffers are: a descriptor
// written just before the doorbell register may still sit in the write
// buffer when the device reads it, and a buffer read just after the
// status register that says it is full may have been read before it.
// So, as Linux's writel and readl do on ARMv7, every write starts with a
// DSB (all earlier loads and stores complete before the device sees the
// write) and every read ends with a DSB (no later access happens before
// the device's value is in). There is no outer cache to sync: the
// Cortex-A7's L2 is inside the core's coherency domain.
type Direct struct{}

var _ MMIO = Direct{}

func mmioRead8(addr uint64) uint8
func mmioRead16(addr uint64) uint16
func mmioRead32(addr uint64) uint32
func mmioWrite8(addr uint64, v uint8)
func mmioWrite16(addr uint64, v uint16)
func mmioWrite32(addr uint64, v uint32)

func (Direct) Read8(addr uint64) uint8       { return mmioRead8(addr) }
func (Direct) Read16(addr uint64) uint16     { return mmioRead16(addr) }
func (Direct) Read32(addr uint64) uint32     { return mmioRead32(addr) }
func (Direct) Write8(addr uint64, v uint8)   { mmioWrite8(addr, v) }
func (Direct) Write16(addr uint64, v uint16) { mmioWrite16(addr, v) }
func (Direct) Write32(addr uint64, v uint32) { mmioWrite32(addr, v) }
