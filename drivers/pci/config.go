// Package pci finds PCI functions and sets them up for polled drivers:
// configuration space access (legacy 0xCF8/0xCFC ports or ECAM), bus 0
// enumeration, BAR sizing and assignment, the COMMAND register and the
// capability list.
//
// Typical use (the windows are the caller's: free physical address space
// the platform routes to PCI):
//
//	cfg := pci.NewPorts(ports)                    // pc, q35
//	cfg := pci.NewECAM(mmio, pci.MicroVMECAM)     // microvm pcie=on
//	d, err := pci.Find(cfg, 0x8086, 0x100e)
//	alloc := pci.Allocator{Mem: pci.Window{Base: 0xe0000000, End: 0xf0000000}}
//	bars, err := alloc.Assign(d)
//	d.Enable(pci.CmdMemory | pci.CmdBusMaster | pci.CmdIntxDisable)
//	regs := bars[0].Addr
//
// Bridges are not walked: only bus 0 is enumerated, which is where QEMU's
// pc, q35 (pcie.0) and microvm put devices by default.
package pci

import (
	"fmt"

	"github.com/tamadump/tamadump/drivers/bus"
)

// Addr is a function's bus/device/function location.
type Addr struct{ Bus, Dev, Fn uint8 }

func (a Addr) String() string { return fmt.Sprintf("%02x:%02x.%x", a.Bus, a.Dev, a.Fn) }

// Config reads and writes configuration space. Offsets are byte offsets
// into the function's space, naturally aligned for the access size.
type Config interface {
	Read8(a Addr, off uint16) uint8
	Read16(a Addr, off uint16) uint16
	Read32(a Addr, off uint16) uint32
	Write8(a Addr, off uint16, v uint8)
	Write16(a Addr, off uint16, v uint16)
	Write32(a Addr, off uint16, v uint32)
}

// MicroVMECAM is where QEMU's microvm (pcie=on) maps ECAM.
const MicroVMECAM = 0xe0000000

// NewPorts is configuration mechanism #1: address to port 0xCF8, data at
// 0xCFC. It reaches the first 256 bytes of each function.
func NewPorts(p bus.Ports) Config { return portConfig{p} }

type portConfig struct{ p bus.Ports }

const (
	portAddr = 0xcf8
	portData = 0xcfc
)

func (c portConfig) sel(a Addr, off uint16) uint16 {
	c.p.Out32(portAddr, 0x80000000|uint32(a.Bus)<<16|uint32(a.Dev&31)<<11|uint32(a.Fn&7)<<8|uint32(off&0xfc))
	return portData + off&3
}

func (c portConfig) Read8(a Addr, off uint16) uint8 {
	if off > 0xff {
		return 0xff
	}
	return c.p.In8(c.sel(a, off))
}

func (c portConfig) Read16(a Addr, off uint16) uint16 {
	if off > 0xfe {
		return 0xffff
	}
	return c.p.In16(c.sel(a, off))
}

func (c portConfig) Read32(a Addr, off uint16) uint32 {
	if off > 0xfc {
		return 0xffffffff
	}
	return c.p.In32(c.sel(a, off))
}

func (c portConfig) Write8(a Addr, off uint16, v uint8) {
	if off <= 0xff {
		c.p.Out8(c.sel(a, off), v)
	}
}

func (c portConfig) Write16(a Addr, off uint16, v uint16) {
	if off <= 0xfe {
		c.p.Out16(c.sel(a, off), v)
	}
}

func (c portConfig) Write32(a Addr, off uint16, v uint32) {
	if off <= 0xfc {
		c.p.Out32(c.sel(a, off), v)
	}
}

// NewECAM is PCI Express enhanced configuration access: function
// (bus, dev, fn) at base + bus<<20 | dev<<15 | fn<<12, 4 KiB each.
func NewECAM(m bus.MMIO, base uint64) Config { return ecam{m, base} }

type ecam struct {
	m    bus.MMIO
	base uint64
}

func (c ecam) at(a Addr, off uint16) uint64 {
	return c.base | uint64(a.Bus)<<20 | uint64(a.Dev&31)<<15 | uint64(a.Fn&7)<<12 | uint64(off&0xfff)
}

func (c ecam) Read8(a Addr, off uint16) uint8       { return c.m.Read8(c.at(a, off)) }
func (c ecam) Read16(a Addr, off uint16) uint16     { return c.m.Read16(c.at(a, off)) }
func (c ecam) Read32(a Addr, off uint16) uint32     { return c.m.Read32(c.at(a, off)) }
func (c ecam) Write8(a Addr, off uint16, v uint8)   { c.m.Write8(c.at(a, off), v) }
func (c ecam) Write16(a Addr, off uint16, v uint16) { c.m.Write16(c.at(a, off), v) }
func (c ecam) Write32(a Addr, off uint16, v uint32) { c.m.Write32(c.at(a, off), v) }
