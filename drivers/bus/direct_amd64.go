//go:build amd64

package bus

// Direct reaches hardware from bare metal: MMIO at physical addresses
// (the boards identity-map device memory, uncached) and x86 port I/O.
// Every access is one MOV/IN/OUT of the stated width, in an assembly
// function: the compiler can neither reorder a call with other memory
// accesses nor split or merge the access. On x86 uncached device memory is
// strongly ordered, and ordinary stores (descriptors in RAM) are not
// reordered with a later device store, so no fences are needed.
//
// Stores are plain MOVs rather than sync/atomic stores: on amd64 an
// atomic store is an XCHG, a locked read-modify-write, so the device
// would also see a read (and read-to-clear registers would lose state).
type Direct struct{}

var (
	_ MMIO  = Direct{}
	_ Ports = Direct{}
)

func mmioRead8(addr uint64) uint8
func mmioRead16(addr uint64) uint16
func mmioRead32(addr uint64) uint32
func mmioWrite8(addr uint64, v uint8)
func mmioWrite16(addr uint64, v uint16)
func mmioWrite32(addr uint64, v uint32)

func portIn8(port uint16) uint8
func portIn16(port uint16) uint16
func portIn32(port uint16) uint32
func portOut8(port uint16, v uint8)
func portOut16(port uint16, v uint16)
func portOut32(port uint16, v uint32)

func (Direct) Read8(addr uint64) uint8       { return mmioRead8(addr) }
func (Direct) Read16(addr uint64) uint16     { return mmioRead16(addr) }
func (Direct) Read32(addr uint64) uint32     { return mmioRead32(addr) }
func (Direct) Write8(addr uint64, v uint8)   { mmioWrite8(addr, v) }
func (Direct) Write16(addr uint64, v uint16) { mmioWrite16(addr, v) }
func (Direct) Write32(addr uint64, v uint32) { mmioWrite32(addr, v) }
func (Direct) In8(port uint16) uint8         { return portIn8(port) }
func (Direct) In16(port uint16) uint16       { return portIn16(port) }
func (Direct) In32(port uint16) uint32       { return portIn32(port) }
func (Direct) Out8(port uint16, v uint8)     { portOut8(port, v) }
func (Direct) Out16(port uint16, v uint16)   { portOut16(port, v) }
func (Direct) Out32(port uint16, v uint32)   { portOut32(port, v) }
