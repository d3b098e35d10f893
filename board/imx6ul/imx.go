//go:build !tamago

package imx6ul

import (
	"bytes"
	"debug/elf"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
)

// The i.MX6 boot ROM reads an image's IVT 1 KiB into the boot device (SD,
// eMMC) and copies the image from the device's start to the load address
// the IVT's boot data gives: mkimage's imximage type puts the IVT, boot
// data and DCD in the 3 KiB before the payload, so with the payload at
// TextStart the IVT is at TextStart-0xc00 and the copy starts 1 KiB
// below it. ivtEntry is the IVT's entry point field.
const (
	ivtOffset = 0x400
	ivtEntry  = 4
	imxHeader = 0xc00
)

// WriteIMX writes the boot image for the i.MX6 ROM, as tamago-example
// makes it for the USB armory: the ELF's loadable bytes from TextStart on
// as a flat binary, bss included as zeros (the Go runtime expects it
// zeroed and DRAM comes up with garbage), behind the IVT and the DCD in
// dcd (an imximage.cfg: DRAM controller, clocks, pads), made by u-boot-
// tools' mkimage. mkimage's -e is where the payload is loaded, so the
// IVT's entry is then set to the ELF's entry point.
//
// The result goes 1 KiB into an SD card or eMMC (dd ... bs=512 seek=2) or
// to the ROM's USB serial download mode as it is.
func WriteIMX(elfPath, dcd, out string) error {
	mkimage, err := exec.LookPath("mkimage")
	if err != nil {
		return errors.New("imx6ul: mkimage not found: apt-get install u-boot-tools")
	}
	bin, entry, err := flatBinary(elfPath)
	if err != nil {
		return err
	}
	dir, err := os.MkdirTemp("", "imx6ul-imx-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	binPath := filepath.Join(dir, "image.bin")
	if err := os.WriteFile(binPath, bin, 0o644); err != nil {
		return err
	}
	cmd := exec.Command(mkimage, "-n", dcd, "-T", "imximage", "-e", fmt.Sprintf("%#x", TextStart), "-d", binPath, out)
	if o, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("mkimage: %v\n%s", err, o)
	}
	f, err := os.OpenFile(out, os.O_RDWR, 0)
	if err != nil {
		return err
	}
	var e [4]byte
	binary.LittleEndian.PutUint32(e[:], entry)
	if _, err := f.WriteAt(e[:], ivtEntry); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// flatBinary is the memory image of the ELF's PT_LOAD segments from
// TextStart to the end of the last one, and the entry point.
func flatBinary(path string) ([]byte, uint32, error) {
	f, err := elf.Open(path)
	if err != nil {
		return nil, 0, err
	}
	defer f.Close()
	if f.Class != elf.ELFCLASS32 || f.Machine != elf.EM_ARM {
		return nil, 0, fmt.Errorf("imx6ul: %s is not a 32-bit ARM ELF", path)
	}
	var end uint64
	for _, p := range f.Progs {
		if p.Type == elf.PT_LOAD {
			end = max(end, p.Vaddr+p.Memsz)
		}
	}
	if end <= TextStart || f.Entry < TextStart || f.Entry >= end {
		return nil, 0, fmt.Errorf("imx6ul: %s does not load at %#x with its entry inside (linked with %s?)", path, TextStart, LinkerFlags)
	}
	bin := make([]byte, end-TextStart)
	for _, p := range f.Progs {
		if p.Type != elf.PT_LOAD || p.Vaddr+p.Filesz <= TextStart {
			continue
		}
		data, err := io.ReadAll(p.Open())
		if err != nil {
			return nil, 0, err
		}
		at := p.Vaddr
		if at < TextStart { // the ELF headers before the text
			data, at = data[TextStart-at:], TextStart
		}
		copy(bin[at-TextStart:], data)
	}
	return bin, uint32(f.Entry), nil
}

// DCDFile is the path of target's DCD in the tamago module the module at
// dir requires (downloaded into the module cache if it is not there).
func DCDFile(dir string, target Target) (string, error) {
	cmd := exec.Command("go", "mod", "download", "-json", "github.com/usbarmory/tamago")
	cmd.Dir = dir
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	var mod struct{ Dir, Error string }
	if err == nil {
		err = json.Unmarshal(out, &mod)
	}
	if err != nil || mod.Error != "" {
		return "", fmt.Errorf("finding the tamago module: %v %s\n%s", err, mod.Error, stderr.String())
	}
	p := filepath.Join(mod.Dir, filepath.FromSlash(target.DCD))
	if _, err := os.Stat(p); err != nil {
		return "", err
	}
	return p, nil
}
