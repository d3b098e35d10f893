// Package elfcore lays out an ELF core file (ET_CORE) over a list of
// memory segments without copying them: the header, program headers and
// notes are built once into a buffer owned by the Core, and the body is
// read straight from the segments' memory. After New, nothing allocates, so
// the netdump client can stream a core file after a panic.
//
// Layout: ELF header, one PT_NOTE and one PT_LOAD per segment, the notes
// (NT_PRSTATUS with the crashed context's registers, the panic message
// and the image's build ID), then each segment's bytes at a page-aligned
// file offset. p_paddr is the physical address and p_vaddr where the
// memory is mapped, so gdb reads variables at their link-time addresses.
// The machine (Arch) decides the ELF class and the NT_PRSTATUS layout:
// Linux's struct elf_prstatus of that architecture, which gdb and Delve
// read.
package elfcore

import (
	"debug/elf"
	"encoding/binary"
	"errors"
	"io"
)

// Page is the alignment of segment data in the file; netdump writes whole
// 4096-byte blocks.
const Page = 4096

// Segment is one range of memory to dump.
type Segment struct {
	Phys uint64 // physical address (p_paddr)
	Virt uint64 // where it is mapped (p_vaddr); often Phys
	Data []byte // its contents, read while the core is streamed
}

// Regs are the crashed context's registers in the order of the pr_reg
// array of the architecture's NT_PRSTATUS: the amd64 indexes (RIP, ...)
// or the ARM ones (ARMR0, ...). Each holds one register; on 32-bit
// machines only the low half is written to the core.
type Regs [27]uint64

// Indexes into Regs on amd64: Linux's user_regs_struct.
const (
	R15 = iota
	R14
	R13
	R12
	RBP
	RBX
	R11
	R10
	R9
	R8
	RAX
	RCX
	RDX
	RSI
	RDI
	OrigRAX
	RIP
	CS
	EFLAGS
	RSP
	SS
	FSBase
	GSBase
	DS
	ES
	FS
	GS
)

// Indexes into Regs on 32-bit ARM: Linux's struct pt_regs (uregs[18]):
// r0-r15, cpsr, and orig_r0 (the syscall argument a restart would use;
// ^0 outside a system call).
const (
	ARMR0 = iota
	ARMR1
	ARMR2
	ARMR3
	ARMR4
	ARMR5
	ARMR6
	ARMR7
	ARMR8
	ARMR9
	ARMR10 // g in Go code
	ARMR11 // fp
	ARMR12 // ip
	ARMSP  // r13
	ARMLR  // r14
	ARMPC  // r15
	ARMCPSR
	ARMOrigR0
)

// Arch is what a core says about the machine it comes from, and what the
// kernel dump header says about it.
type Arch struct {
	Machine elf.Machine
	Class   elf.Class
	// KDHName and KDHVersion are the architecture string and
	// architecture version FreeBSD's dump code writes into the kernel
	// dump header for this machine (MACHINE_ARCH and the machine's
	// KERNELDUMP_*_VERSION).
	KDHName    string
	KDHVersion uint32

	// The NT_PRSTATUS layout: Linux's sizeof(struct elf_prstatus), and
	// where pr_pid and pr_reg (of NRegs registers of RegSize bytes) are.
	// pr_info.si_signo is at 0 and pr_cursig at 12 on every machine.
	prstatus, pidOff, regOff, regSize, nregs int
}

// The machines. FreeBSD's kerneldump.h has KERNELDUMP_AMD64_VERSION 2 and
// KERNELDUMP_ARM_VERSION 1; its MACHINE_ARCH is "amd64", and "armv7" when
// built for ARMv7 (the i.MX6's Cortex-A7; "armv6" below it).
var (
	AMD64 = Arch{Machine: elf.EM_X86_64, Class: elf.ELFCLASS64, KDHName: "amd64", KDHVersion: 2,
		prstatus: 336, pidOff: 32, regOff: 112, regSize: 8, nregs: 27}
	ARM = Arch{Machine: elf.EM_ARM, Class: elf.ELFCLASS32, KDHName: "armv7", KDHVersion: 1,
		prstatus: 148, pidOff: 24, regOff: 72, regSize: 4, nregs: 18}
)

// largest is the biggest NT_PRSTATUS of all Arch values, to size headers.
const largest = 336

// Note types and names written by the Core.
const (
	// NotePanic carries the panic message (name "TAMADUMP"), NUL-terminated.
	NotePanic = 0x54440001
	noteCore  = "CORE"
	noteOwn   = "TAMADUMP"
	// MaxPanic bounds the panic note so the header size is known up front.
	MaxPanic = 256
)

// ELF header and program header sizes of each class.
const (
	ehdr64, phdr64 = 64, 56
	ehdr32, phdr32 = 52, 32
)

// Errors.
var (
	ErrTooManySegments = errors.New("elfcore: more segments than the core was sized for")
	ErrUnaligned       = errors.New("elfcore: segment address not page-aligned")
	ErrNoArch          = errors.New("elfcore: Info.Arch is not set")
	ErrAddress32       = errors.New("elfcore: segment beyond 4 GiB in a 32-bit core")
)

// Info describes the crash for the notes.
type Info struct {
	Arch   *Arch // the machine: &AMD64 or &ARM
	Regs   Regs
	Signal uint16 // si_signo / pr_cursig, e.g. 6 (SIGABRT) for a panic
	PID    uint32 // pr_pid; gdb shows it as the thread id
	Panic  []byte // the panic message; truncated to MaxPanic-1 bytes
	// BuildID is the image's GNU build-id (package buildid), if known.
	BuildID []byte
}

// Core is a core file being streamed. The zero value is unusable; use New.
type Core struct {
	hdr     []byte // ELF header, phdrs, notes, zero padding to the data
	hdrLen  int64  // where the first segment's data starts
	segs    []Segment
	offs    []int64 // file offset of each segment's data
	maxSegs int
	size    int64
}

// New sizes a Core for up to maxSegs segments of any Arch. It allocates;
// call it at configuration time.
func New(maxSegs int) *Core {
	n := headerSize(maxSegs)
	return &Core{hdr: make([]byte, n), offs: make([]int64, maxSegs), maxSegs: maxSegs}
}

func headerSize(maxSegs int) int {
	notes := noteSize(noteCore, largest) + noteSize(noteOwn, MaxPanic) + noteSize(noteOwn, MaxBuildID)
	return roundUp(ehdr64+phdr64*(1+maxSegs)+notes, Page)
}

func noteSize(name string, desc int) int {
	return 12 + roundUp(len(name)+1, 4) + roundUp(desc, 4)
}

func roundUp(n, to int) int { return (n + to - 1) / to * to }

// Build lays out a core of segs and info. segs is kept (not copied) until
// the next Build; segment data must stay valid while the core is read.
// It does not allocate.
func (c *Core) Build(segs []Segment, info *Info) error {
	a := info.Arch
	if a == nil {
		return ErrNoArch
	}
	if len(segs) > c.maxSegs {
		return ErrTooManySegments
	}
	for i := range segs {
		s := &segs[i]
		if s.Phys%Page != 0 || s.Virt%Page != 0 {
			return ErrUnaligned
		}
		if a.Class == elf.ELFCLASS32 && (s.Phys+uint64(len(s.Data)) > 1<<32 || s.Virt+uint64(len(s.Data)) > 1<<32) {
			return ErrAddress32
		}
	}
	clear(c.hdr)
	c.segs = segs
	h := c.hdr
	w := writer{wide: a.Class == elf.ELFCLASS64}
	ehdr, phdr := ehdr32, phdr32
	if w.wide {
		ehdr, phdr = ehdr64, phdr64
	}
	nph := 1 + len(segs)
	notesOff := ehdr + phdr*nph
	notesLen := noteSize(noteCore, a.prstatus) + noteSize(noteOwn, MaxPanic) + buildIDNoteSize(info.BuildID)
	dataOff := int64(roundUp(notesOff+notesLen, Page))

	copy(h, elf.ELFMAG)
	h[elf.EI_CLASS] = byte(a.Class)
	h[elf.EI_DATA] = byte(elf.ELFDATA2LSB)
	h[elf.EI_VERSION] = byte(elf.EV_CURRENT)
	h[elf.EI_OSABI] = byte(elf.ELFOSABI_NONE)
	le.PutUint16(h[16:], uint16(elf.ET_CORE))
	le.PutUint16(h[18:], uint16(a.Machine))
	le.PutUint32(h[20:], uint32(elf.EV_CURRENT))
	// e_entry, e_phoff, e_shoff are words; then e_flags (0) and the
	// half-word sizes and counts.
	at := w.word(h, 24, 0)           // e_entry
	at = w.word(h, at, uint64(ehdr)) // e_phoff
	at = w.word(h, at, 0)            // e_shoff
	at += 4                          // e_flags
	le.PutUint16(h[at:], uint16(ehdr))
	le.PutUint16(h[at+2:], uint16(phdr))
	le.PutUint16(h[at+4:], uint16(nph))

	w.phdr(h[ehdr:], elf.PT_NOTE, 0, uint64(notesOff), 0, 0, uint64(notesLen), 4)
	off := dataOff
	for i, s := range segs {
		w.phdr(h[ehdr+phdr*(i+1):], elf.PT_LOAD, elf.PF_R|elf.PF_W|elf.PF_X, uint64(off), s.Virt, s.Phys, uint64(len(s.Data)), Page)
		c.offs[i] = off
		off += int64(roundUp(len(s.Data), Page))
	}
	c.hdrLen = dataOff
	if len(segs) > 0 {
		// The file ends with the last byte of data, not its page padding.
		last := len(segs) - 1
		c.size = c.offs[last] + int64(len(segs[last].Data))
	} else {
		c.size = dataOff
	}

	n := h[notesOff:]
	desc := putNoteHeader(n, noteCore, a.prstatus, uint32(elf.NT_PRSTATUS))
	le.PutUint32(desc[0:], uint32(info.Signal)) // si_signo
	le.PutUint16(desc[12:], info.Signal)        // pr_cursig
	le.PutUint32(desc[a.pidOff:], info.PID)
	for i, r := range info.Regs[:a.nregs] {
		if a.regSize == 8 {
			le.PutUint64(desc[a.regOff+8*i:], r)
		} else {
			le.PutUint32(desc[a.regOff+4*i:], uint32(r))
		}
	}
	n = n[noteSize(noteCore, a.prstatus):]
	desc = putNoteHeader(n, noteOwn, MaxPanic, NotePanic)
	copy(desc[:MaxPanic-1], info.Panic)
	putBuildID(n[noteSize(noteOwn, MaxPanic):], info.BuildID)
	return nil
}

// writer puts the class-dependent fields: words are 8 bytes in ELFCLASS64
// and 4 in ELFCLASS32.
type writer struct{ wide bool }

var le = binary.LittleEndian

// word writes v at b[at:] and returns the offset after it.
func (w writer) word(b []byte, at int, v uint64) int {
	if w.wide {
		le.PutUint64(b[at:], v)
		return at + 8
	}
	le.PutUint32(b[at:], uint32(v))
	return at + 4
}

// phdr writes one program header. The two classes order the fields
// differently: ELF64 has p_flags second, ELF32 next to last.
func (w writer) phdr(b []byte, typ elf.ProgType, flags elf.ProgFlag, off, vaddr, paddr, size, align uint64) {
	le.PutUint32(b[0:], uint32(typ))
	at := 4
	if w.wide {
		le.PutUint32(b[4:], uint32(flags))
		at = 8
	}
	at = w.word(b, at, off)
	at = w.word(b, at, vaddr)
	at = w.word(b, at, paddr)
	at = w.word(b, at, size) // p_filesz
	at = w.word(b, at, size) // p_memsz
	if !w.wide {
		le.PutUint32(b[at:], uint32(flags))
		at += 4
	}
	w.word(b, at, align)
}

// putNoteHeader writes a note header and name and returns its desc area.
func putNoteHeader(b []byte, name string, descLen int, typ uint32) []byte {
	le.PutUint32(b[0:], uint32(len(name)+1))
	le.PutUint32(b[4:], uint32(descLen))
	le.PutUint32(b[8:], typ)
	copy(b[12:], name)
	d := 12 + roundUp(len(name)+1, 4)
	return b[d : d+descLen]
}

// Size is the length of the core file.
func (c *Core) Size() int64 { return c.size }

// zeroPage backs the padding between segments.
var zeroPage [Page]byte

// Chunk returns a view of the file's bytes starting at off, at most max
// bytes and never crossing a region boundary (header, a segment, padding),
// so callers loop. It is empty at or beyond Size. It does not copy.
func (c *Core) Chunk(off int64, max int) []byte {
	if off < 0 || off >= c.size || max <= 0 {
		return nil
	}
	if off < c.hdrLen {
		return clip(c.hdr[off:c.hdrLen], max)
	}
	i, rel := c.segment(off)
	if d := c.segs[i].Data; rel < int64(len(d)) {
		return clip(d[rel:], max)
	}
	pad := Page - int(rel%Page)
	return clip(zeroPage[:pad], max)
}

// segment finds the segment whose data (or padding after it) holds file
// offset off, past the headers: its index and off's offset in it.
func (c *Core) segment(off int64) (int, int64) {
	// Segments are few and sorted by file offset; find the last one that
	// starts at or before off.
	lo, hi := 0, len(c.segs)
	for lo < hi {
		m := int(uint(lo+hi) >> 1)
		if c.offs[m] <= off {
			lo = m + 1
		} else {
			hi = m
		}
	}
	i := lo - 1 // >= 0: the first segment starts at hdrLen
	return i, off - c.offs[i]
}

// Phys is the physical address (the segment's Phys) of the core file's
// byte at off, and false where off is not in a segment's data (the
// headers, padding, beyond Size): where the bytes Chunk views at off are
// in physical memory.
func (c *Core) Phys(off int64) (uint64, bool) {
	if off < c.hdrLen || off >= c.size {
		return 0, false
	}
	i, rel := c.segment(off)
	if rel >= int64(len(c.segs[i].Data)) {
		return 0, false
	}
	return c.segs[i].Phys + uint64(rel), true
}

func clip(b []byte, max int) []byte {
	if len(b) > max {
		return b[:max]
	}
	return b
}

// ReadAt implements io.ReaderAt over the file, for tests and tools.
func (c *Core) ReadAt(p []byte, off int64) (int, error) {
	n := 0
	for n < len(p) {
		b := c.Chunk(off+int64(n), len(p)-n)
		if len(b) == 0 {
			return n, io.EOF
		}
		n += copy(p[n:], b)
	}
	return n, nil
}
