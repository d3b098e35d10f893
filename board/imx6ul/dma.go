//go:build tamago && arm

package imx6ul

import (
	"encoding/binary"

	"github.com/usbarmory/tamago/arm"
	"github.com/usbarmory/tamago/soc/nxp/imx6ul"
)

// normalUncached is a first-level section descriptor's attributes for
// Normal memory, outer and inner non-cacheable (TEX=0b001, C=0, B=0),
// read/write at PL1, never executed.
const normalUncached = arm.TTE_AP_001<<10 | 0b001<<12 | arm.TTE_SECTION | arm.TTE_EXECUTE_NEVER

// mapDMA maps the DMA region uncached.
//
// The Cortex-A7 caches RAM (tamago maps it write-back) and the ENET's DMA
// does not snoop the caches, so descriptors and buffers must either live
// in memory the CPU does not cache, or be cleaned before the device reads
// them and invalidated before the CPU reads what the device wrote. The
// board takes the first: the crash-time driver then needs only ordering
// (bus.Direct's DSB before each doorbell, DMB around descriptor words),
// and cannot go wrong by a missed or misplaced cache operation after a
// crash, when nothing can be debugged. Cache maintenance by address would
// also touch whole 64-byte lines, so an invalidate of a buffer that
// shares a line with anything the CPU wrote would lose that write. The
// cost is small: the driver reads each received frame once and copies
// each frame to send once; the memory being dumped stays cached.
//
// Normal non-cacheable rather than device memory (what tamago gives
// everything outside RAM, OCRAM included): the CPU may merge and buffer
// writes to it, which makes the copy into a transmit buffer quick, and
// Go's memmove and the packet code may access it like any memory.
func mapDMA() {
	l := Info()
	if l.DMAStart%section != 0 || l.DMASize%section != 0 {
		print("imx6ul board: DMA region not in whole 1 MiB sections; it stays as tamago mapped it\n")
		return
	}
	// ConfigureMMU cleans the data cache and flushes the TLBs: no line
	// of the region stays cached from before.
	imx6ul.ARM.ConfigureMMU(uint32(l.DMAStart), uint32(l.DMAStart+l.DMASize), 0, normalUncached)
}

// TTE returns the first-level translation table entry that maps addr
// (tamago keeps the table at RAM+0x4000), for tests.
func TTE(addr uint32) uint32 {
	return binary.LittleEndian.Uint32(phys(RAMStart+0x4000+uint64(addr>>20)*4, 4))
}
