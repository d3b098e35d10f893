// Command tamaimx is `make imx`: it builds a TamaGo program for an i.MX6UL
// board (board/imx6ul) and writes the .imx image the SoC's boot ROM loads
// from an SD card or eMMC, or over USB in serial download mode.
package main

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/tamadump/tamadump/board/imx6ul"
	"github.com/tamadump/tamadump/qemu/gobuild"
)

func main() {
	board := flag.String("board", os.Getenv("BOARD"), "the board: imx6ul")
	target := flag.String("target", "evk", "which imx6ul board: evk (MCIMX6ULL-EVK) or usbarmory (USB armory Mk II LAN)")
	pkg := flag.String("pkg", "./cmd/tamadump", "the main package to build")
	out := flag.String("out", "build", "where the ELF and the .imx go")
	ldflags := flag.String("ldflags", "", "more linker flags, e.g. -X main.server=10.0.0.1")
	flag.Parse()
	if err := run(*board, *target, *pkg, *out, *ldflags); err != nil {
		fmt.Fprintln(os.Stderr, "tamaimx:", err)
		os.Exit(1)
	}
}

func run(board, target, pkg, out, ldflags string) error {
	if board != "imx6ul" {
		return fmt.Errorf("make imx is for BOARD=imx6ul (got %q)", board)
	}
	tg, err := imx6ul.TargetNamed(target)
	if err != nil {
		return err
	}
	gocmd, err := gobuild.Command(".")
	if err != nil {
		return err
	}
	dcd, err := imx6ul.DCDFile(".", tg)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(out, 0o755); err != nil {
		return err
	}
	name := strings.TrimSuffix(filepath.Base(pkg), "/") + "-imx6ul-" + tg.Name
	elfPath, imxPath := filepath.Join(out, name+".elf"), filepath.Join(out, name+".imx")
	if err := imx6ul.Build(gocmd, ".", pkg, elfPath, tg, ldflags); err != nil {
		return err
	}
	if err := imx6ul.WriteIMX(elfPath, dcd, imxPath); err != nil {
		return err
	}
	st, err := os.Stat(imxPath)
	if err != nil {
		return err
	}
	fmt.Printf("ELF:  %s\nboot image: %s (%d MiB, DCD %s)\n", elfPath, imxPath, st.Size()>>20, tg.DCD)
	fmt.Printf("SD card or eMMC: dd if=%s of=/dev/sdX bs=512 seek=2 conv=fsync (the IVT goes 1 KiB in)\n", imxPath)
	return nil
}
