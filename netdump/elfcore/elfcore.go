// Package elfcore lays out an ELF64 core file (ET_CORE) over a list of
// memory segments without copying them: the header, program headers and
// notes are built once into a buffer owned by the Core, and the body is
// read straight from the segments' memory. After New, nothing allocates, so
// the netdump client can stream a core file after a panic.
//
// Layout: ELF header, one PT_NOTE and one PT_LOAD per segment, the notes
// (NT_PRSTATUS for amd64, the panic message and the image's build ID),
// then each segment's bytes at a page-aligned file offset. p_paddr is the
// physical address and p_vaddr where the memory is mapped, so gdb reads
// variables at their link-time addresses.
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

// Regs are amd64 registers in the order of Linux's user_regs_struct, the
// pr_reg array of NT_PRSTATUS that gdb reads.
type Regs [27]uint64

// Indexes into Regs.
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

// Note types and names written by the Core.
const (
	// NotePanic carries the panic message (name "TAMADUMP"), NUL-terminated.
	NotePanic = 0x54440001
	noteCore  = "CORE"
	noteOwn   = "TAMADUMP"
	// prstatusSize is sizeof(struct elf_prstatus) on amd64; pr_reg starts
	// at prRegOff.
	prstatusSize = 336
	prRegOff     = 112
	// MaxPanic bounds the panic note so the header size is known up front.
	MaxPanic = 256
)

const (
	ehdrSize = 64
	phdrSize = 56
)

// Errors.
var (
	ErrTooManySegments = errors.New("elfcore: more segments than the core was sized for")
	ErrUnaligned       = errors.New("elfcore: segment address not page-aligned")
)

// Info describes the crash for the notes.
type Info struct {
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

// New sizes a Core for up to maxSegs segments. It allocates; call it at
// configuration time.
func New(maxSegs int) *Core {
	n := headerSize(maxSegs)
	return &Core{hdr: make([]byte, n), offs: make([]int64, maxSegs), maxSegs: maxSegs}
}

func headerSize(maxSegs int) int {
	notes := noteSize(noteCore, prstatusSize) + noteSize(noteOwn, MaxPanic) + noteSize(noteOwn, MaxBuildID)
	return roundUp(ehdrSize+phdrSize*(1+maxSegs)+notes, Page)
}

func noteSize(name string, desc int) int {
	return 12 + roundUp(len(name)+1, 4) + roundUp(desc, 4)
}

func roundUp(n, to int) int { return (n + to - 1) / to * to }

// Build lays out a core of segs and info. segs is kept (not copied) until
// the next Build; segment data must stay valid while the core is read.
// It does not allocate.
func (c *Core) Build(segs []Segment, info *Info) error {
	if len(segs) > c.maxSegs {
		return ErrTooManySegments
	}
	for i := range segs {
		if segs[i].Phys%Page != 0 || segs[i].Virt%Page != 0 {
			return ErrUnaligned
		}
	}
	clear(c.hdr)
	c.segs = segs
	h := c.hdr
	le := binary.LittleEndian
	nph := 1 + len(segs)
	notesOff := ehdrSize + phdrSize*nph
	notesLen := noteSize(noteCore, prstatusSize) + noteSize(noteOwn, MaxPanic) + buildIDNoteSize(info.BuildID)
	dataOff := int64(roundUp(notesOff+notesLen, Page))

	copy(h, elf.ELFMAG)
	h[elf.EI_CLASS] = byte(elf.ELFCLASS64)
	h[elf.EI_DATA] = byte(elf.ELFDATA2LSB)
	h[elf.EI_VERSION] = byte(elf.EV_CURRENT)
	h[elf.EI_OSABI] = byte(elf.ELFOSABI_NONE)
	le.PutUint16(h[16:], uint16(elf.ET_CORE))
	le.PutUint16(h[18:], uint16(elf.EM_X86_64))
	le.PutUint32(h[20:], uint32(elf.EV_CURRENT))
	le.PutUint64(h[32:], ehdrSize) // e_phoff
	le.PutUint16(h[52:], ehdrSize)
	le.PutUint16(h[54:], phdrSize)
	le.PutUint16(h[56:], uint16(nph))

	ph := h[ehdrSize:]
	le.PutUint32(ph[0:], uint32(elf.PT_NOTE))
	le.PutUint64(ph[8:], uint64(notesOff))
	le.PutUint64(ph[32:], uint64(notesLen))
	le.PutUint64(ph[48:], 4)

	off := dataOff
	for i, s := range segs {
		p := ph[phdrSize*(i+1):]
		le.PutUint32(p[0:], uint32(elf.PT_LOAD))
		le.PutUint32(p[4:], uint32(elf.PF_R|elf.PF_W|elf.PF_X))
		le.PutUint64(p[8:], uint64(off))
		le.PutUint64(p[16:], s.Virt)
		le.PutUint64(p[24:], s.Phys)
		le.PutUint64(p[32:], uint64(len(s.Data)))
		le.PutUint64(p[40:], uint64(len(s.Data)))
		le.PutUint64(p[48:], Page)
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
	desc := putNoteHeader(n, noteCore, prstatusSize, uint32(elf.NT_PRSTATUS))
	le.PutUint32(desc[0:], uint32(info.Signal)) // si_signo
	le.PutUint16(desc[12:], info.Signal)        // pr_cursig
	le.PutUint32(desc[32:], info.PID)           // pr_pid
	for i, r := range info.Regs {
		le.PutUint64(desc[prRegOff+8*i:], r)
	}
	n = n[noteSize(noteCore, prstatusSize):]
	desc = putNoteHeader(n, noteOwn, MaxPanic, NotePanic)
	copy(desc[:MaxPanic-1], info.Panic)
	putBuildID(n[noteSize(noteOwn, MaxPanic):], info.BuildID)
	return nil
}

// putNoteHeader writes a note header and name and returns its desc area.
func putNoteHeader(b []byte, name string, descLen int, typ uint32) []byte {
	le := binary.LittleEndian
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
	rel := off - c.offs[i]
	if d := c.segs[i].Data; rel < int64(len(d)) {
		return clip(d[rel:], max)
	}
	pad := Page - int(rel%Page)
	return clip(zeroPage[:pad], max)
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
