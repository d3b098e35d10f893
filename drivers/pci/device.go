package pci

import (
	"errors"
	"fmt"
)

// Configuration header offsets (type 0 header).
const (
	RegVendor   = 0x00
	RegDevice   = 0x02
	RegCommand  = 0x04
	RegStatus   = 0x06
	RegRevision = 0x08
	RegHeader   = 0x0e
	RegBAR0     = 0x10
	RegCapPtr   = 0x34
)

// COMMAND register bits.
const (
	CmdIO          = 1 << 0
	CmdMemory      = 1 << 1
	CmdBusMaster   = 1 << 2
	CmdIntxDisable = 1 << 10 // polled drivers: keep INTx deasserted
)

const statusCapList = 1 << 4

// Device is one PCI function.
type Device struct {
	Config   Config
	Addr     Addr
	Vendor   uint16
	ID       uint16
	Class    uint32 // base class<<16 | subclass<<8 | programming interface
	Revision uint8
	Header   uint8 // header type without the multi-function bit: 0 device, 1 bridge
}

func (d Device) String() string {
	return fmt.Sprintf("%v %04x:%04x class %06x", d.Addr, d.Vendor, d.ID, d.Class)
}

// ErrNotFound is returned by Find when no function matches.
var ErrNotFound = errors.New("pci: device not found")

// Enumerate lists the functions on bus 0.
func Enumerate(c Config) []Device {
	var ds []Device
	for dev := uint8(0); dev < 32; dev++ {
		d, ok := probe(c, Addr{0, dev, 0})
		if !ok {
			continue
		}
		ds = append(ds, d)
		if c.Read8(d.Addr, RegHeader)&0x80 == 0 {
			continue // single-function device
		}
		for fn := uint8(1); fn < 8; fn++ {
			if d, ok := probe(c, Addr{0, dev, fn}); ok {
				ds = append(ds, d)
			}
		}
	}
	return ds
}

func probe(c Config, a Addr) (Device, bool) {
	id := c.Read32(a, RegVendor)
	if v := uint16(id); v == 0xffff || v == 0 {
		return Device{}, false
	}
	rc := c.Read32(a, RegRevision)
	return Device{
		Config:   c,
		Addr:     a,
		Vendor:   uint16(id),
		ID:       uint16(id >> 16),
		Class:    rc >> 8,
		Revision: uint8(rc),
		Header:   c.Read8(a, RegHeader) & 0x7f,
	}, true
}

// Find returns the first function on bus 0 with the given IDs.
func Find(c Config, vendor, id uint16) (Device, error) {
	for _, d := range Enumerate(c) {
		if d.Vendor == vendor && d.ID == id {
			return d, nil
		}
	}
	return Device{}, fmt.Errorf("%w: %04x:%04x", ErrNotFound, vendor, id)
}

// Read8 reads the function's configuration space.
func (d Device) Read8(off uint16) uint8 { return d.Config.Read8(d.Addr, off) }

// Read16 reads the function's configuration space.
func (d Device) Read16(off uint16) uint16 { return d.Config.Read16(d.Addr, off) }

// Read32 reads the function's configuration space.
func (d Device) Read32(off uint16) uint32 { return d.Config.Read32(d.Addr, off) }

// Write8 writes the function's configuration space.
func (d Device) Write8(off uint16, v uint8) { d.Config.Write8(d.Addr, off, v) }

// Write16 writes the function's configuration space.
func (d Device) Write16(off uint16, v uint16) { d.Config.Write16(d.Addr, off, v) }

// Write32 writes the function's configuration space.
func (d Device) Write32(off uint16, v uint32) { d.Config.Write32(d.Addr, off, v) }

// Enable sets bits (Cmd*) in the COMMAND register, keeping the others.
func (d Device) Enable(bits uint16) {
	d.Write16(RegCommand, d.Read16(RegCommand)|bits)
}

// Disable clears bits (Cmd*) in the COMMAND register.
func (d Device) Disable(bits uint16) {
	d.Write16(RegCommand, d.Read16(RegCommand)&^bits)
}

// Cap is one entry of the capability list.
type Cap struct {
	ID  uint8  // 0x05 MSI, 0x09 vendor specific, 0x10 PCIe, 0x11 MSI-X
	Off uint16 // offset of the capability in configuration space
}

// Capability IDs.
const (
	CapMSI    = 0x05
	CapVendor = 0x09
	CapPCIe   = 0x10
	CapMSIX   = 0x11
)

// Caps walks the capability list. A corrupt list (a loop, pointers into
// the header) ends the walk instead of hanging it.
func (d Device) Caps() []Cap {
	if d.Read16(RegStatus)&statusCapList == 0 {
		return nil
	}
	var caps []Cap
	off := uint16(d.Read8(RegCapPtr) &^ 3)
	for i := 0; off >= 0x40 && i < 48; i++ {
		caps = append(caps, Cap{ID: d.Read8(off), Off: off})
		off = uint16(d.Read8(off+1) &^ 3)
	}
	return caps
}
