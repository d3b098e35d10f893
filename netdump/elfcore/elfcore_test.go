package elfcore

import (
	"bytes"
	"debug/elf"
	"encoding/binary"
	"io"
	"math/rand/v2"
	"testing"
)

func segments() []Segment {
	r := rand.New(rand.NewPCG(1, 2))
	mk := func(n int) []byte {
		b := make([]byte, n)
		for i := range b {
			b[i] = byte(r.Uint32())
		}
		return b
	}
	return []Segment{
		{Phys: 0x100000, Virt: 0x100000, Data: mk(3 * Page)},
		{Phys: 0x200000, Virt: 0xc000000000, Data: mk(Page + 100)}, // ragged end: padded in the file
		{Phys: 0x400000, Virt: 0x400000, Data: mk(2*Page + 7)},
	}
}

func TestParsesBack(t *testing.T) {
	segs := segments()
	c := New(8)
	info := Info{Signal: 6, PID: 1, Panic: []byte("boom")}
	info.Regs[RIP], info.Regs[RSP], info.Regs[RBP] = 0x401234, 0xc000123000, 0xc000123100
	if err := c.Build(segs, &info); err != nil {
		t.Fatal(err)
	}
	f, err := elf.NewFile(io.NewSectionReader(c, 0, c.Size()))
	if err != nil {
		t.Fatal(err)
	}
	if f.Type != elf.ET_CORE || f.Machine != elf.EM_X86_64 || f.Class != elf.ELFCLASS64 {
		t.Fatalf("header: %v %v %v", f.Type, f.Machine, f.Class)
	}
	var loads []*elf.Prog
	var note *elf.Prog
	for _, p := range f.Progs {
		switch p.Type {
		case elf.PT_LOAD:
			loads = append(loads, p)
		case elf.PT_NOTE:
			note = p
		}
	}
	if len(loads) != len(segs) || note == nil {
		t.Fatalf("%d loads, note %v", len(loads), note)
	}
	for i, p := range loads {
		if p.Paddr != segs[i].Phys || p.Vaddr != segs[i].Virt || p.Filesz != uint64(len(segs[i].Data)) || p.Off%Page != 0 {
			t.Fatalf("load %d: %+v", i, p.ProgHeader)
		}
		got, err := io.ReadAll(p.Open())
		if err != nil || !bytes.Equal(got, segs[i].Data) {
			t.Fatalf("load %d contents differ (%v)", i, err)
		}
	}
	if last := loads[len(loads)-1]; int64(last.Off+last.Filesz) != c.Size() {
		t.Fatalf("size %d, last load ends at %d", c.Size(), last.Off+last.Filesz)
	}
	notes, _ := io.ReadAll(note.Open())
	var sawRegs, sawPanic bool
	for len(notes) >= 12 {
		nl, dl, typ := binary.LittleEndian.Uint32(notes), binary.LittleEndian.Uint32(notes[4:]), binary.LittleEndian.Uint32(notes[8:])
		name := string(notes[12 : 12+nl-1])
		d := notes[12+roundUp(int(nl), 4):]
		desc := d[:dl]
		switch {
		case name == "CORE" && typ == uint32(elf.NT_PRSTATUS):
			sawRegs = dl == prstatusSize &&
				binary.LittleEndian.Uint64(desc[prRegOff+8*RIP:]) == 0x401234 &&
				binary.LittleEndian.Uint64(desc[prRegOff+8*RSP:]) == 0xc000123000 &&
				binary.LittleEndian.Uint16(desc[12:]) == 6
		case name == "TAMADUMP" && typ == NotePanic:
			sawPanic = string(bytes.TrimRight(desc, "\x00")) == "boom"
		}
		notes = d[roundUp(int(dl), 4):]
	}
	if !sawRegs || !sawPanic {
		t.Fatalf("notes: prstatus %v panic %v", sawRegs, sawPanic)
	}
}

func TestChunksCoverFile(t *testing.T) {
	c := New(4)
	if err := c.Build(segments(), &Info{}); err != nil {
		t.Fatal(err)
	}
	whole := make([]byte, c.Size())
	if _, err := c.ReadAt(whole, 0); err != nil {
		t.Fatal(err)
	}
	// Odd-sized chunks must give the same bytes as one read.
	var off int64
	for off < c.Size() {
		b := c.Chunk(off, 1447)
		if len(b) == 0 || !bytes.Equal(b, whole[off:off+int64(len(b))]) {
			t.Fatalf("chunk at %d", off)
		}
		off += int64(len(b))
	}
	if c.Chunk(c.Size(), 10) != nil {
		t.Fatal("chunk past the end")
	}
	if _, err := c.ReadAt(make([]byte, 2), c.Size()-1); err != io.EOF {
		t.Fatalf("read past end: %v", err)
	}
}

func TestErrors(t *testing.T) {
	c := New(1)
	if err := c.Build(segments(), &Info{}); err != ErrTooManySegments {
		t.Fatalf("too many: %v", err)
	}
	if err := c.Build([]Segment{{Phys: 10, Data: make([]byte, 1)}}, &Info{}); err != ErrUnaligned {
		t.Fatalf("unaligned: %v", err)
	}
}

func TestNoAllocation(t *testing.T) {
	segs := segments()
	c := New(8)
	info := &Info{Panic: []byte("x")}
	n := testing.AllocsPerRun(100, func() {
		if err := c.Build(segs, info); err != nil {
			t.Fatal(err)
		}
		for off := int64(0); off < c.Size(); {
			off += int64(len(c.Chunk(off, 1448)))
		}
	})
	if n != 0 {
		t.Fatalf("%v allocations per build+stream", n)
	}
}
