// Package shim builds the freestanding x86-64 shim that boots an unmodified
// static Linux/amd64 Go program (CGO_ENABLED=0 GOOS=linux GOARCH=amd64)
// bare-metal under QEMU's microvm machine, and gives the QEMU arguments for
// it.
//
// The shim is the QEMU -kernel (a PVH ELF); the Go program is the -initrd.
// The kernel command line (-append) is
//
//	[shim options] -- [arguments] [NAME=VALUE ...]
//
// Words before "--" are shim options: dma=SIZE (the DMA region, K/M/G
// suffix, rounded up to 2 MiB; default 2M) and verbose (one boot line on
// the console). After "--", a word NAME=VALUE whose NAME is letters, digits
// and '_' (not starting with a digit) goes to the environment, every other
// word is argv[1], argv[2], ...; argv[0] is "init". Words are separated by
// spaces; there is no quoting.
//
// QEMU exit status, with the isa-debug-exit device of QEMUArgs, is
// (code<<1)|1 modulo 256, where code is the Go program's exit status, the
// code given to the HALT system call, 128+signal for a fatal signal or
// fault when no crash watcher is registered, 124 when the shim cannot boot
// or the crash watcher did not arrive within 1 s, and 125 for a fault in the
// dump path (after a crash, in the crash watcher) or in the shim itself.
package shim

import (
	"embed"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
)

//go:embed src
var sources embed.FS // in a subdirectory: the go tool rejects C files next to Go files without cgo

// The same flags as the Makefile.
var cflags = []string{
	"-O2", "-g", "-Wall", "-Wextra", "-Wno-unused-parameter", "-ffreestanding", "-nostdlib",
	"-mgeneral-regs-only", "-mno-red-zone", "-fno-pic", "-no-pie", "-static", "-fno-stack-protector",
	"-fno-asynchronous-unwind-tables", "-fcf-protection=none", "-fno-builtin",
	"-Wl,-T,shim.ld", "-Wl,--build-id=none", "-Wl,-z,noexecstack", "-Wl,--no-warn-rwx-segments",
}

var csources = []string{"boot.S", "kmain.c", "mm.c", "proc.c"}

// ErrNoCompiler is returned by Build when gcc is not installed.
var ErrNoCompiler = errors.New("shim: gcc not found in PATH (install gcc: apt-get install gcc)")

// Build compiles the shim with gcc into outDir and returns the ELF's path
// (outDir/shim.elf). The sources are embedded, so it works from any
// directory; they are written to outDir/shim-src first.
func Build(outDir string) (string, error) {
	gcc, err := exec.LookPath("gcc")
	if err != nil {
		return "", ErrNoCompiler
	}
	src := filepath.Join(outDir, "shim-src")
	if err := os.MkdirAll(src, 0o755); err != nil {
		return "", err
	}
	ents, err := sources.ReadDir("src")
	if err != nil {
		return "", err
	}
	for _, e := range ents {
		b, err := sources.ReadFile("src/" + e.Name())
		if err != nil {
			return "", err
		}
		if err := os.WriteFile(filepath.Join(src, e.Name()), b, 0o644); err != nil {
			return "", err
		}
	}
	out, err := filepath.Abs(filepath.Join(outDir, "shim.elf"))
	if err != nil {
		return "", err
	}
	args := append(append(append([]string{}, cflags...), "-o", out), csources...)
	cmd := exec.Command(gcc, args...)
	cmd.Dir = src
	if msg, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("shim: gcc: %v\n%s", err, msg)
	}
	return out, nil
}

// QEMUArgs returns the qemu-system-x86_64 arguments that boot goELF on the
// shim with ramMiB MiB of RAM and appendLine as the kernel command line:
// a microvm (TCG; PCIe with ECAM at 0xe0000000, PIT, PIC and RTC on, QEMU
// adding nothing to the command line), -kernel, -initrd, -append, the
// isa-debug-exit device at 0xf4, -no-reboot (so REBOOT ends QEMU) and
// -display none. The caller adds the console (-serial stdio, or a chardev)
// and any network devices.
func QEMUArgs(shimELF, goELF string, ramMiB int, appendLine string) []string {
	return []string{
		"-M", "microvm,pcie=on,pit=on,pic=on,rtc=on,auto-kernel-cmdline=off",
		"-m", strconv.Itoa(ramMiB),
		"-kernel", shimELF,
		"-initrd", goELF,
		"-append", appendLine,
		"-device", "isa-debug-exit,iobase=0xf4,iosize=0x04",
		"-no-reboot",
		"-display", "none",
	}
}
