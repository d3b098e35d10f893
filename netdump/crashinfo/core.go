package crashinfo

import (
	"bytes"
	"debug/elf"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/tamadump/tamadump/netdump/buildid"
	"github.com/tamadump/tamadump/netdump/elfcore"
)

// vmcore is what crashinfo reads from a core file itself, without Delve:
// the machine, the notes tamadump writes, and whether the file is whole.
// Every length in the file is checked before use: the file came over an
// unauthenticated network.
type vmcore struct {
	machine elf.Machine
	class   elf.Class
	size    int64 // of the file
	need    int64 // the file size its PT_LOADs call for

	prstatus bool // an NT_PRSTATUS note was found
	thread   uint32
	signal   uint16
	regs     []reg // in pr_reg order; nil when the layout is unknown
	panic    string
	buildID  buildid.ID
}

type reg struct {
	name  string
	value uint64
}

// maxNotes bounds the PT_NOTE segments read: tamadump's take about 700
// bytes.
const maxNotes = 1 << 20

var errNotes = errors.New("the notes (PT_NOTE) are malformed")

func readCore(path string) (*vmcore, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, err
	}
	ef, err := elf.NewFile(f)
	if err != nil {
		return nil, fmt.Errorf("not an ELF core: %w", err)
	}
	if ef.Type != elf.ET_CORE {
		return nil, fmt.Errorf("not an ELF core: the file is %v", ef.Type)
	}
	c := &vmcore{machine: ef.Machine, class: ef.Class, size: st.Size()}
	var notes []byte
	for _, p := range ef.Progs {
		if p.Type == elf.PT_LOAD && p.Off < 1<<62 && p.Filesz < 1<<62 {
			c.need = max(c.need, int64(p.Off+p.Filesz))
		}
		if p.Type != elf.PT_NOTE {
			continue
		}
		if p.Filesz > maxNotes-uint64(len(notes)) {
			return c, fmt.Errorf("%w: more than %d bytes of them", errNotes, maxNotes)
		}
		b := make([]byte, p.Filesz)
		if n, err := p.ReadAt(b, 0); n < len(b) {
			return c, fmt.Errorf("%w: %v", errNotes, err)
		}
		notes = append(notes, b...)
	}
	return c, c.parseNotes(notes)
}

// parseNotes takes the notes tamadump writes: NT_PRSTATUS, the panic
// message and the build ID.
func (c *vmcore) parseNotes(b []byte) error {
	le := binary.LittleEndian
	for len(b) > 0 {
		if len(b) < 12 {
			return fmt.Errorf("%w: %d stray bytes at the end", errNotes, len(b))
		}
		nameLen, descLen, typ := uint64(le.Uint32(b)), uint64(le.Uint32(b[4:])), le.Uint32(b[8:])
		nameEnd := 12 + (nameLen+3)&^3
		if nameEnd > uint64(len(b)) || (descLen+3)&^3 > uint64(len(b))-nameEnd {
			return fmt.Errorf("%w: a note runs past their end", errNotes)
		}
		name := string(bytes.TrimRight(b[12:12+nameLen], "\x00"))
		desc := b[nameEnd : nameEnd+descLen]
		b = b[nameEnd+(descLen+3)&^3:]
		switch {
		case name == "CORE" && typ == uint32(elf.NT_PRSTATUS) && !c.prstatus:
			c.prstatus = true
			c.readPRStatus(desc)
		case name == "TAMADUMP" && typ == elfcore.NotePanic:
			c.panic = string(bytes.TrimRight(desc, "\x00"))
		case name == "TAMADUMP" && typ == elfcore.NoteBuildID && len(desc) >= buildid.MinSize && len(desc) <= buildid.MaxSize:
			c.buildID = buildid.ID(desc)
		}
	}
	return nil
}

// prstatus is where Linux's struct elf_prstatus of a machine has pr_pid
// and pr_reg; pr_info.si_signo is at 0 and pr_cursig at 12 on all.
type prstatus struct {
	size, pid, regs, word int
	names                 []string
}

var prstatusOf = map[elf.Machine]prstatus{
	elf.EM_X86_64: {336, 32, 112, 8, strings.Fields("r15 r14 r13 r12 rbp rbx r11 r10 r9 r8 rax rcx rdx rsi rdi orig_rax rip cs eflags rsp ss fs_base gs_base ds es fs gs")},
	elf.EM_ARM:    {148, 24, 72, 4, strings.Fields("r0 r1 r2 r3 r4 r5 r6 r7 r8 r9 r10 fp ip sp lr pc cpsr orig_r0")},
}

func (c *vmcore) readPRStatus(d []byte) {
	le := binary.LittleEndian
	if len(d) >= 14 {
		c.signal = le.Uint16(d[12:])
	}
	l, ok := prstatusOf[c.machine]
	if !ok || len(d) < l.size {
		return
	}
	c.thread = le.Uint32(d[l.pid:])
	for i, n := range l.names {
		r := reg{name: n}
		if l.word == 8 {
			r.value = le.Uint64(d[l.regs+8*i:])
		} else {
			r.value = uint64(le.Uint32(d[l.regs+4*i:]))
		}
		c.regs = append(c.regs, r)
	}
}

// truncated reports whether the file is shorter than its segments need.
func (c *vmcore) truncated() bool { return c.size < c.need }

var signalNames = map[uint16]string{4: "SIGILL", 5: "SIGTRAP", 6: "SIGABRT", 7: "SIGBUS", 8: "SIGFPE", 11: "SIGSEGV"}
