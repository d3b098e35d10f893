package pci

import (
	"errors"
	"fmt"
)

// BAR is one base address register, sized.
type BAR struct {
	Index    int    // 0-5; a 64-bit BAR also uses Index+1
	IO       bool   // I/O space (else memory)
	Is64     bool   // 64-bit memory BAR
	Prefetch bool   // prefetchable memory
	Addr     uint64 // current base address; 0 means unassigned
	Size     uint64
}

func (b BAR) String() string {
	kind := "mem32"
	switch {
	case b.IO:
		kind = "io"
	case b.Is64:
		kind = "mem64"
	}
	if b.Prefetch {
		kind += " pref"
	}
	return fmt.Sprintf("BAR%d %s %#x+%#x", b.Index, kind, b.Addr, b.Size)
}

// BARs reads and sizes every implemented BAR of a type 0 function. Sizing
// writes all-ones and reads back, with decoding switched off meanwhile so
// the device never answers at the probe address; the original values and
// COMMAND are restored.
func (d Device) BARs() ([]BAR, error) {
	if d.Header != 0 {
		return nil, fmt.Errorf("pci: %v: header type %d has no type 0 BARs", d.Addr, d.Header)
	}
	cmd := d.Read16(RegCommand)
	d.Write16(RegCommand, cmd&^(CmdIO|CmdMemory))
	defer d.Write16(RegCommand, cmd)

	var bars []BAR
	for i := 0; i < 6; i++ {
		off := uint16(RegBAR0 + 4*i)
		orig := d.Read32(off)
		d.Write32(off, 0xffffffff)
		probe := d.Read32(off)
		d.Write32(off, orig)
		if probe == 0 {
			continue // not implemented
		}
		b := BAR{Index: i}
		if orig&1 != 0 {
			b.IO = true
			mask := probe &^ 3
			if mask&0xffff0000 == 0 {
				mask |= 0xffff0000 // 16-bit I/O decoder
			}
			b.Addr = uint64(orig &^ 3)
			b.Size = uint64(^mask + 1)
		} else {
			b.Prefetch = orig&8 != 0
			mask := uint64(probe &^ 0xf)
			b.Addr = uint64(orig &^ 0xf)
			if orig&6 == 4 {
				if i == 5 {
					return nil, fmt.Errorf("pci: %v: 64-bit BAR5", d.Addr)
				}
				b.Is64 = true
				hiOrig := d.Read32(off + 4)
				d.Write32(off+4, 0xffffffff)
				hiProbe := d.Read32(off + 4)
				d.Write32(off+4, hiOrig)
				mask |= uint64(hiProbe) << 32
				b.Addr |= uint64(hiOrig) << 32
				i++
			} else {
				mask |= 0xffffffff00000000
			}
			b.Size = ^mask + 1
		}
		bars = append(bars, b)
	}
	return bars, nil
}

// Window is a range [Base, End) of bus addresses the platform routes to PCI.
type Window struct{ Base, End uint64 }

// Allocator hands out BAR addresses from windows, lowest first, each BAR
// aligned to its size.
type Allocator struct {
	Mem   Window // memory BARs (32-bit, and 64-bit ones when Mem64 is empty)
	Mem64 Window // optional: 64-bit memory BARs
	IO    Window // I/O BARs; empty where the platform has no I/O space (microvm)
}

// ErrNoSpace is returned when a window cannot hold a BAR.
var ErrNoSpace = errors.New("pci: window exhausted")

// Assign gives every unassigned BAR of d an address and returns the BARs
// as they are afterwards. BARs that already have an address keep it; BARs
// whose window is not given (End 0) stay unassigned (Addr 0), e.g. I/O
// BARs on a platform without I/O space. Decoding is not enabled here: call
// Enable afterwards.
func (al *Allocator) Assign(d Device) ([]BAR, error) {
	bars, err := d.BARs()
	if err != nil {
		return nil, err
	}
	for i := range bars {
		b := &bars[i]
		if b.Addr != 0 {
			continue
		}
		w, align := &al.Mem, max(b.Size, 4096) // page-aligned: mappable on its own
		switch {
		case b.IO:
			w, align = &al.IO, b.Size
		case b.Is64 && al.Mem64.End > al.Mem64.Base:
			w = &al.Mem64
		}
		if w.End == 0 {
			continue
		}
		addr := (w.Base + align - 1) &^ (align - 1)
		if addr < w.Base || addr+b.Size > w.End || addr+b.Size < addr {
			return nil, fmt.Errorf("%w: %v %v in [%#x, %#x)", ErrNoSpace, d.Addr, *b, w.Base, w.End)
		}
		if !b.Is64 && addr+b.Size > 1<<32 {
			return nil, fmt.Errorf("%w: %v %v above 4 GiB", ErrNoSpace, d.Addr, *b)
		}
		w.Base = addr + b.Size
		off := uint16(RegBAR0 + 4*b.Index)
		d.Write32(off, uint32(addr))
		if b.Is64 {
			d.Write32(off+4, uint32(addr>>32))
		}
		b.Addr = addr
	}
	return bars, nil
}

// FindBAR returns the BAR with the given index from a BARs or Assign result.
func FindBAR(bars []BAR, index int) (BAR, bool) {
	for _, b := range bars {
		if b.Index == index {
			return b, true
		}
	}
	return BAR{}, false
}
