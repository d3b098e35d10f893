package elfcore

import (
	"bytes"
	"debug/elf"
	"encoding/binary"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"unsafe"
)

// segments is a machine's memory: for AMD64 one part mapped high, as the
// Go heap is; for ARM everything below 4 GiB, as on the i.MX6.
func segments(a *Arch) []Segment {
	r := rand.New(rand.NewPCG(1, 2))
	mk := func(n int) []byte {
		b := make([]byte, n)
		for i := range b {
			b[i] = byte(r.Uint32())
		}
		return b
	}
	high := uint64(0xc000000000)
	if a.Class == elf.ELFCLASS32 {
		high = 0x90000000
	}
	return []Segment{
		{Phys: 0x100000, Virt: 0x100000, Data: mk(3 * Page)},
		{Phys: 0x200000, Virt: high, Data: mk(Page + 100)}, // ragged end: padded in the file
		{Phys: 0x400000, Virt: 0x400000, Data: mk(2*Page + 7)},
	}
}

// note is one parsed ELF note.
type note struct {
	name string
	typ  uint32
	desc []byte
}

func parseNotes(t *testing.T, b []byte) []note {
	t.Helper()
	var ns []note
	for len(b) > 0 {
		if len(b) < 12 {
			t.Fatalf("%d stray bytes after the notes", len(b))
		}
		nl, dl, typ := binary.LittleEndian.Uint32(b), binary.LittleEndian.Uint32(b[4:]), binary.LittleEndian.Uint32(b[8:])
		name := string(b[12 : 12+nl-1])
		d := b[12+roundUp(int(nl), 4):]
		ns = append(ns, note{name, typ, d[:dl]})
		b = d[roundUp(int(dl), 4):]
	}
	return ns
}

func TestParsesBack(t *testing.T) {
	for _, tc := range []struct {
		arch    *Arch
		machine elf.Machine
		class   elf.Class
		// Linux's sizeof(struct elf_prstatus), offsets of pr_pid and
		// pr_reg, and the number and width of the registers.
		size, pid, reg, nregs, width int
	}{
		{&AMD64, elf.EM_X86_64, elf.ELFCLASS64, 336, 32, 112, 27, 8},
		{&ARM, elf.EM_ARM, elf.ELFCLASS32, 148, 24, 72, 18, 4},
	} {
		t.Run(tc.arch.KDHName, func(t *testing.T) {
			segs := segments(tc.arch)
			c := New(8)
			info := Info{Arch: tc.arch, Signal: 11, PID: 7, Panic: []byte("boom")}
			for i := range info.Regs {
				info.Regs[i] = 0x1000_0000 + uint64(i)*0x111 // each register its own value
			}
			if err := c.Build(segs, &info); err != nil {
				t.Fatal(err)
			}
			f, err := elf.NewFile(io.NewSectionReader(c, 0, c.Size()))
			if err != nil {
				t.Fatal(err)
			}
			if f.Type != elf.ET_CORE || f.Machine != tc.machine || f.Class != tc.class || f.Data != elf.ELFDATA2LSB {
				t.Fatalf("header: %v %v %v %v", f.Type, f.Machine, f.Class, f.Data)
			}
			var loads []*elf.Prog
			var notes *elf.Prog
			for _, p := range f.Progs {
				switch p.Type {
				case elf.PT_LOAD:
					loads = append(loads, p)
				case elf.PT_NOTE:
					notes = p
				}
			}
			if len(loads) != len(segs) || notes == nil {
				t.Fatalf("%d loads, note %v", len(loads), notes)
			}
			for i, p := range loads {
				if p.Paddr != segs[i].Phys || p.Vaddr != segs[i].Virt || p.Filesz != uint64(len(segs[i].Data)) ||
					p.Memsz != p.Filesz || p.Off%Page != 0 || p.Flags != elf.PF_R|elf.PF_W|elf.PF_X || p.Align != Page {
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
			b, _ := io.ReadAll(notes.Open())
			ns := parseNotes(t, b)
			if len(ns) != 2 || ns[0].name != "CORE" || ns[0].typ != uint32(elf.NT_PRSTATUS) || ns[1].name != "TAMADUMP" || ns[1].typ != NotePanic {
				t.Fatalf("notes %+v", ns)
			}
			d := ns[0].desc
			if len(d) != tc.size || binary.LittleEndian.Uint32(d) != 11 || binary.LittleEndian.Uint16(d[12:]) != 11 ||
				binary.LittleEndian.Uint32(d[tc.pid:]) != 7 {
				t.Fatalf("prstatus of %d bytes, signo %d cursig %d pid %d", len(d),
					binary.LittleEndian.Uint32(d), binary.LittleEndian.Uint16(d[12:]), binary.LittleEndian.Uint32(d[tc.pid:]))
			}
			for i := 0; i < tc.nregs; i++ {
				var got uint64
				if tc.width == 8 {
					got = binary.LittleEndian.Uint64(d[tc.reg+8*i:])
				} else {
					got = uint64(binary.LittleEndian.Uint32(d[tc.reg+4*i:]))
				}
				if got != info.Regs[i] {
					t.Fatalf("register %d = %#x, want %#x", i, got, info.Regs[i])
				}
			}
			// pr_fpvalid and what follows the registers stay zero.
			if end := tc.reg + tc.width*tc.nregs; !bytes.Equal(d[end:], make([]byte, len(d)-end)) {
				t.Fatalf("bytes after pr_reg: %x", d[end:])
			}
			if string(bytes.TrimRight(ns[1].desc, "\x00")) != "boom" || len(ns[1].desc) != MaxPanic {
				t.Fatalf("panic note %q", ns[1].desc)
			}
		})
	}
}

// TestLargest: New sizes headers for the biggest NT_PRSTATUS, and every
// machine's registers fit Regs.
func TestLargest(t *testing.T) {
	for _, a := range []*Arch{&AMD64, &ARM} {
		if a.prstatus > largest || a.nregs > len(Regs{}) || a.regOff+a.nregs*a.regSize > a.prstatus {
			t.Errorf("%s: prstatus %d, %d registers", a.KDHName, a.prstatus, a.nregs)
		}
	}
}

func TestChunksCoverFile(t *testing.T) {
	c := New(4)
	if err := c.Build(segments(&ARM), &Info{Arch: &ARM}); err != nil {
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

// TestPhys: every byte of segment data has its segment's address plus
// its place in it (the same bytes Chunk views there); the headers, the
// padding after a ragged segment and the end have none.
func TestPhys(t *testing.T) {
	c := New(4)
	segs := segments(&ARM)
	if err := c.Build(segs, &Info{Arch: &ARM}); err != nil {
		t.Fatal(err)
	}
	found := 0
	for off := int64(0); off < c.Size()+2; off++ {
		addr, ok := c.Phys(off)
		in, rel := -1, uintptr(0)
		if b := c.Chunk(off, 1); len(b) == 1 {
			p := uintptr(unsafe.Pointer(&b[0]))
			for i, s := range segs {
				if d := uintptr(unsafe.Pointer(&s.Data[0])); p >= d && p < d+uintptr(len(s.Data)) {
					in, rel = i, p-d
				}
			}
		}
		if in < 0 {
			if ok {
				t.Fatalf("offset %d (no segment data) has address %#x", off, addr)
			}
			continue
		}
		found++
		want := segs[in].Phys + uint64(rel)
		if !ok || addr != want {
			t.Fatalf("offset %d: address %#x %v, want %#x", off, addr, ok, want)
		}
	}
	if want := 3*Page + Page + 100 + 2*Page + 7; found != want {
		t.Fatalf("%d bytes with an address, want %d", found, want)
	}
}

func TestErrors(t *testing.T) {
	c := New(1)
	amd64 := &Info{Arch: &AMD64}
	if err := c.Build(segments(&AMD64), amd64); err != ErrTooManySegments {
		t.Fatalf("too many: %v", err)
	}
	if err := c.Build([]Segment{{Phys: 10, Data: make([]byte, 1)}}, amd64); err != ErrUnaligned {
		t.Fatalf("unaligned: %v", err)
	}
	if err := c.Build(nil, &Info{}); err != ErrNoArch {
		t.Fatalf("no architecture: %v", err)
	}
	// A 32-bit core cannot say where memory above 4 GiB is; a 64-bit one can.
	high := []Segment{{Phys: 0xfffff000, Virt: 0xfffff000, Data: make([]byte, 2*Page)}}
	if err := c.Build(high, &Info{Arch: &ARM}); err != ErrAddress32 {
		t.Fatalf("ARM segment across 4 GiB: %v", err)
	}
	if err := c.Build(high, amd64); err != nil {
		t.Fatalf("amd64 segment across 4 GiB: %v", err)
	}
}

func TestNoAllocation(t *testing.T) {
	segs := segments(&ARM)
	c := New(8)
	info := &Info{Arch: &ARM, Panic: []byte("x")}
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

// TestGDBMultiarch has Debian's gdb-multiarch read a synthetic ARM core:
// every register of NT_PRSTATUS, the signal and a word of memory must
// come out as written.
func TestGDBMultiarch(t *testing.T) {
	gdb, err := exec.LookPath("gdb-multiarch")
	if err != nil {
		t.Skip("SKIP: gdb-multiarch is not installed (apt-get install gdb-multiarch; make deps does)")
	}
	mem := make([]byte, 2*Page)
	binary.LittleEndian.PutUint32(mem[0x234:], 0xfeedc0de)
	segs := []Segment{{Phys: 0x80000000, Virt: 0x80000000, Data: mem}}
	info := Info{Arch: &ARM, Signal: 11, PID: 1, Panic: []byte("data abort")}
	names := []string{"r0", "r1", "r2", "r3", "r4", "r5", "r6", "r7", "r8", "r9", "r10", "r11", "r12", "sp", "lr", "pc", "cpsr"}
	for i := range names {
		info.Regs[i] = 0x80001000 + uint64(i)*4
	}
	info.Regs[ARMCPSR] = 0x600001df // SYS mode, IRQ and FIQ masked, Z and C set
	c := New(1)
	if err := c.Build(segs, &info); err != nil {
		t.Fatal(err)
	}
	b := make([]byte, c.Size())
	if _, err := c.ReadAt(b, 0); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "vmcore")
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(gdb, "-batch", "-nx", "-ex", "core-file "+path,
		"-ex", "info registers", "-ex", "x/xw 0x80000234").CombinedOutput()
	if err != nil {
		t.Fatalf("gdb-multiarch: %v\n%s", err, out)
	}
	got := map[string]uint64{}
	for _, line := range strings.Split(string(out), "\n") {
		f := strings.Fields(line)
		if len(f) >= 2 && strings.HasPrefix(f[1], "0x") {
			got[f[0]], _ = strconv.ParseUint(f[1], 0, 64)
		}
	}
	for i, n := range names {
		if v, ok := got[n]; !ok || v != info.Regs[i] {
			t.Errorf("gdb shows %s = %#x (%v), want %#x", n, v, ok, info.Regs[i])
		}
	}
	if !strings.Contains(string(out), "signal SIGSEGV") || !strings.Contains(string(out), "0x80000234:\t0xfeedc0de") {
		t.Errorf("gdb output lacks the signal or the memory word:\n%s", out)
	}
	if t.Failed() {
		t.Logf("gdb output:\n%s", out)
	}
}
