package main

import (
	"bufio"
	"debug/elf"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/tamadump/tamadump/netdump/buildid"
	"github.com/tamadump/tamadump/netdump/crashinfo"
	"github.com/tamadump/tamadump/netdump/server"
	"github.com/tamadump/tamadump/netdump/symbols"
	"github.com/tamadump/tamadump/qemu/boot"
)

// subcommand runs `tamaqemu crashinfo ...`, the analysis the report
// writer starts in a process of its own, as netdumpd does.
func subcommand(args []string) (code int, ok bool) {
	if len(args) == 0 || args[0] != "crashinfo" {
		return 0, false
	}
	return crashinfo.Main(args[1:], os.Stdout, os.Stderr), true
}

// keptELF is where the symbols directory keeps the image's ELF.
func keptELF(img *boot.Image) (string, error) {
	id, err := buildid.File(img.ELF)
	if err != nil {
		return "", err
	}
	return symbols.Find(img.Symbols, id)
}

// newReports writes core.txt after the dump, looking the image up in its
// symbols directory; written receives the report's path.
func newReports(img *boot.Image) (*crashinfo.Writer, chan string) {
	written := make(chan string, 1)
	exe, _ := os.Executable()
	w := crashinfo.NewWriter(crashinfo.Config{
		Symbols: img.Symbols,
		Command: []string{exe, "crashinfo"},
		Log:     func(_ server.Level, msg string) { fmt.Printf("netdumpd: %s\n", msg) },
		Written: func(p string) {
			select {
			case written <- p:
			default:
			}
		},
	})
	return w, written
}

// showReport prints the head of core.txt, through the stack of the
// goroutine on the crashed thread, and the debugger command lines.
func showReport(written chan string, exe, core string) error {
	var path string
	select {
	case path = <-written:
	case <-time.After(crashinfo.DefaultTimeout + 10*time.Second):
		return errors.New("netdumpd wrote no core.txt")
	}
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	fmt.Printf("\n--- %s (head) ---\n", path)
	s := bufio.NewScanner(f)
	stacks, n := 0, 0
	for s.Scan() {
		l := s.Text()
		if strings.HasPrefix(l, "goroutine ") {
			if stacks++; stacks > 1 {
				break
			}
		}
		if n++; n > 120 {
			break
		}
		fmt.Println(l)
	}
	fmt.Printf("...\n\ndebug it:\n")
	dlv := "dlv"
	if _, err := exec.LookPath("dlv"); err != nil {
		dlv = "go tool dlv" // the version go.mod pins; make deps installs dlv
	}
	var machine elf.Machine
	if f, err := elf.Open(core); err == nil {
		machine = f.Machine
		f.Close()
	}
	exe, core = abs(exe), abs(core)
	for _, c := range crashinfo.Commands(machine, exe, core) {
		fmt.Printf("  %s\n", strings.Replace(c, "dlv ", dlv+" ", 1))
	}
	return nil
}

func abs(p string) string {
	if a, err := filepath.Abs(p); err == nil {
		return a
	}
	return p
}
