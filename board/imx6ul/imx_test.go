//go:build !tamago

package imx6ul_test

import (
	"bytes"
	"debug/elf"
	"encoding/binary"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tamadump/tamadump/board/imx6ul"
)

// armELF is a small ELF32 ARM executable laid out as the TamaGo linker
// lays out an image: a first segment from the ELF headers (a page below
// TextStart) through the text, and a data segment whose bss is not in the
// file.
func armELF(t *testing.T, text, data []byte, bss int, entry uint32) string {
	t.Helper()
	le := binary.LittleEndian
	const textAt, dataAt = 0x1000, 0x2000
	f := make([]byte, dataAt+len(data))
	copy(f, elf.ELFMAG)
	f[elf.EI_CLASS], f[elf.EI_DATA], f[elf.EI_VERSION] = byte(elf.ELFCLASS32), byte(elf.ELFDATA2LSB), byte(elf.EV_CURRENT)
	le.PutUint16(f[16:], uint16(elf.ET_EXEC))
	le.PutUint16(f[18:], uint16(elf.EM_ARM))
	le.PutUint32(f[20:], 1)
	le.PutUint32(f[24:], entry)
	le.PutUint32(f[28:], 52) // e_phoff
	le.PutUint16(f[40:], 52) // e_ehsize
	le.PutUint16(f[42:], 32) // e_phentsize
	le.PutUint16(f[44:], 2)  // e_phnum
	ph := func(i int, off, vaddr, filesz, memsz uint32, flags elf.ProgFlag) {
		p := f[52+32*i:]
		le.PutUint32(p[0:], uint32(elf.PT_LOAD))
		le.PutUint32(p[4:], off)
		le.PutUint32(p[8:], vaddr)
		le.PutUint32(p[12:], vaddr)
		le.PutUint32(p[16:], filesz)
		le.PutUint32(p[20:], memsz)
		le.PutUint32(p[24:], uint32(flags))
		le.PutUint32(p[28:], 0x1000)
	}
	ph(0, 0, imx6ul.TextStart-textAt, textAt+uint32(len(text)), textAt+uint32(len(text)), elf.PF_R|elf.PF_X)
	ph(1, dataAt, imx6ul.TextStart+0x10000, uint32(len(data)), uint32(len(data)+bss), elf.PF_R|elf.PF_W)
	copy(f[textAt:], text)
	copy(f[dataAt:], data)
	path := filepath.Join(t.TempDir(), "image.elf")
	if err := os.WriteFile(path, f, 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// TestWriteIMX checks the boot image the ROM reads: the IVT (with the
// ELF's entry point, its own address and the boot data's), the DCD from
// tamago's EVK configuration, and the payload at TextStart with data and
// zeroed bss where the ELF puts them, covered by the copy the boot data
// asks for.
func TestWriteIMX(t *testing.T) {
	if _, err := exec.LookPath("mkimage"); err != nil {
		t.Skip("SKIP: mkimage is not installed (apt-get install u-boot-tools; make deps does)")
	}
	dcd, err := imx6ul.DCDFile("../..", imx6ul.Targets[0])
	if err != nil {
		t.Fatal(err)
	}
	text := bytes.Repeat([]byte("TEXT"), 128)
	data := bytes.Repeat([]byte("data"), 64)
	const entry = imx6ul.TextStart + 0x40
	out := filepath.Join(t.TempDir(), "image.imx")
	if err := imx6ul.WriteIMX(armELF(t, text, data, 0x3000, entry), dcd, out); err != nil {
		t.Fatal(err)
	}
	img, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	le := binary.LittleEndian
	// IVT: header (tag 0xd1, big-endian length 32, version 4.x), entry,
	// reserved, DCD, boot data, self, CSF, reserved.
	if img[0] != 0xd1 || binary.BigEndian.Uint16(img[1:]) != 32 || img[3]>>4 != 4 {
		t.Fatalf("no IVT header: %x", img[:4])
	}
	self := le.Uint32(img[20:])
	if got := le.Uint32(img[4:]); got != entry {
		t.Fatalf("IVT entry %#x, want the ELF's %#x", got, entry)
	}
	if self != imx6ul.TextStart-0xc00 {
		t.Fatalf("IVT at %#x, want %#x (3 KiB of headers before the payload)", self, imx6ul.TextStart-0xc00)
	}
	at := func(addr uint32) []byte { return img[addr-self:] } // file offset of a load address
	boot := at(le.Uint32(img[16:]))
	start, length := le.Uint32(boot), le.Uint32(boot[4:])
	if start != self-0x400 || uint64(start)+uint64(length) < imx6ul.TextStart+0x10000+uint64(len(data))+0x3000 {
		t.Fatalf("boot data: %#x+%#x does not cover the image", start, length)
	}
	dcdHdr := at(le.Uint32(img[12:]))
	if dcdHdr[0] != 0xd2 || !bytes.Contains(dcdHdr[:binary.BigEndian.Uint16(dcdHdr[1:])], []byte{0x02, 0x0c, 0x40, 0x68, 0xff, 0xff, 0xff, 0xff}) {
		t.Fatalf("no DCD with the EVK's first write (CCM_CCGR0 = 0xffffffff): %x", dcdHdr[:16])
	}
	payload := at(imx6ul.TextStart)
	want := make([]byte, 0x10000+len(data)+0x3000)
	copy(want, text)
	copy(want[0x10000:], data)
	if len(payload) < len(want) || !bytes.Equal(payload[:len(want)], want) {
		t.Fatalf("payload at TextStart differs from the ELF's memory image")
	}
	// u-boot-tools reads it back the same way.
	o, err := exec.Command("mkimage", "-l", out).CombinedOutput()
	if err != nil || !strings.Contains(string(o), "Freescale IMX Boot Image") || !strings.Contains(string(o), "Entry Point:  80010040") {
		t.Fatalf("mkimage -l: %v\n%s", err, o)
	}

	// Not an ARM image at TextStart: refused.
	bad := armELF(t, text, data, 0, imx6ul.TextStart-0x100)
	if err := imx6ul.WriteIMX(bad, dcd, out); err == nil {
		t.Fatal("an entry point outside the image was accepted")
	}
}

// TestIMXOfBootImage writes the boot image of the real self-test image:
// its entry is the runtime's, and the payload is the ELF's memory.
func TestIMXOfBootImage(t *testing.T) {
	if _, err := exec.LookPath("mkimage"); err != nil {
		t.Skip("SKIP: mkimage is not installed (apt-get install u-boot-tools; make deps does)")
	}
	img := buildImage(t, evk)
	dcd, err := imx6ul.DCDFile("../..", evk.Target)
	if err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(t.TempDir(), "bootimage.imx")
	if err := imx6ul.WriteIMX(img, dcd, out); err != nil {
		t.Fatal(err)
	}
	f, err := elf.Open(img)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	if got := binary.LittleEndian.Uint32(b[4:]); uint64(got) != f.Entry {
		t.Fatalf("IVT entry %#x, ELF entry %#x", got, f.Entry)
	}
	text := f.Section(".text")
	want, _ := text.Data()
	if got := b[0xc00 : 0xc00+len(want)]; !bytes.Equal(got, want) {
		t.Fatal(".text is not at TextStart in the boot image")
	}
	st, _ := os.Stat(img)
	t.Logf("ELF %d bytes, boot image %d bytes", st.Size(), len(b))
}
