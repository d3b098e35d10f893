// Command tamaqemu is `make qemu`: it builds the tamadump image, boots it
// under QEMU with a netdumpd alongside (joined through a user-space
// network, no root needed), panics it from the serial console, waits for
// the dump and shows where it is and what it holds: the head of the
// post-mortem report netdumpd writes (core.txt), and the debugger command
// lines for it. With -build-only it is `make image`.
package main

import (
	"debug/elf"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/tamadump/tamadump/qemu/boot"
	"github.com/tamadump/tamadump/qemu/gdbprof"
)

func main() {
	if code, ok := subcommand(os.Args[1:]); ok {
		os.Exit(code)
	}
	board := flag.String("board", os.Getenv("BOARD"), "tamago, stockgo, imx6ul or imx6ul-usbarmory (default: tamago when its toolchain is installed)")
	nic := flag.String("nic", "virtio-mmio", "NIC: "+strings.Join(boot.NICs, ", ")+" (virtio = virtio-mmio)")
	ram := flag.Int("ram", 64, "guest RAM in MiB")
	dumpDir := flag.String("dumpdir", "dumps", "where netdumpd saves dumps")
	out := flag.String("out", "build", "where images are built")
	msg := flag.String("panic", "boom from make qemu", "the panic message")
	buildOnly := flag.Bool("build-only", false, "build the image and stop (make image)")
	fill := flag.String("fill", "", "fill the guest's RAM with random data before the prompt: MiB or free (a dump with data to send)")
	profile := flag.Duration("profile", 0, "sample the guest every interval through QEMU's gdbstub from the panic to the dump's end and print where its time went, by function (amd64 boards)")
	flag.Parse()
	if *nic == "virtio" {
		*nic = "virtio-mmio"
	}
	if err := run(job{board: *board, nic: *nic, ram: *ram, dumpDir: *dumpDir, out: *out, msg: *msg, fill: *fill, profile: *profile, buildOnly: *buildOnly}); err != nil {
		fmt.Fprintln(os.Stderr, "tamaqemu:", err)
		os.Exit(1)
	}
}

// job is what the flags ask for.
type job struct {
	board, nic   string
	ram          int
	dumpDir, out string
	msg, fill    string
	profile      time.Duration // 0: no profile
	buildOnly    bool
}

func run(j job) error {
	note := ""
	if j.board == "" {
		var why error
		if j.board, why = boot.PickBoard(); why != nil {
			note = fmt.Sprintf(" (the TamaGo toolchain is not installed: %v)", why)
		}
	}
	fmt.Printf("board: %s%s\n", j.board, note)
	if boot.IsIMX6UL(j.board) {
		j.nic = boot.IMXENET // the SoC's own; microvm's NICs do not exist there
		if j.profile > 0 {
			return fmt.Errorf("-profile reads amd64 registers: not on %s", j.board)
		}
	}
	if err := os.MkdirAll(j.out, 0o755); err != nil {
		return err
	}
	t0 := time.Now()
	settings := map[string]string{"server": boot.ServerAddr.Addr().String(), "client": boot.GuestAddr.String()}
	if j.fill != "" {
		settings["fill"] = j.fill
	}
	img, err := boot.Build(j.board, j.out, settings)
	if err != nil {
		return err
	}
	fmt.Printf("image: %s (built in %v)\n", img.ELF, time.Since(t0).Round(time.Millisecond))
	kept, err := keptELF(img)
	if err != nil {
		return err
	}
	fmt.Printf("symbols: %s\n", kept)
	if j.buildOnly {
		return nil
	}
	reports, written := newReports(img)
	defer reports.Close()
	if err := os.MkdirAll(j.dumpDir, 0o755); err != nil {
		return err
	}
	fmt.Printf("netdumpd: listening on %v:20023 in a user-space network, saving to %s\n", boot.ServerAddr.Addr(), j.dumpDir)
	fmt.Printf("qemu: %s NIC, %d MiB\n--- serial console ---\n", j.nic, j.ram)
	args := img.QEMUArgs(j.ram)
	var gdbSock string
	if j.profile > 0 {
		dir, err := os.MkdirTemp("", "tamaqemu-gdb-")
		if err != nil {
			return err
		}
		defer os.RemoveAll(dir)
		gdbSock = filepath.Join(dir, "gdb.sock")
		args = append(args, gdbprof.QEMUArgs(gdbSock)...)
	}
	m, err := boot.Start(boot.Config{QEMUArgs: args, NIC: j.nic, DumpDir: j.dumpDir, Console: os.Stdout, Log: os.Stdout, Ended: reports.Ended})
	if err != nil {
		return err
	}
	defer m.Close()
	start := time.Now()
	if _, err := m.Expect("READY", 2*time.Minute); err != nil {
		return err
	}
	ready := time.Since(start)
	stop, profiled := make(chan struct{}), make(chan error, 1)
	var prof *gdbprof.Profile
	if gdbSock != "" {
		go func() {
			var err error
			prof, err = gdbprof.Run(gdbSock, j.profile, 64, stop)
			profiled <- err
		}()
	}
	if err := m.Send("panic " + j.msg); err != nil {
		return err
	}
	t1 := time.Now()
	if err := m.WaitLog("Completed dump", 10*time.Minute); err != nil {
		return err
	}
	took := time.Since(t1)
	if gdbSock != "" {
		close(stop)
		if err := <-profiled; err != nil {
			return fmt.Errorf("profiling the guest: %w", err)
		}
	}
	status, err := m.Wait(time.Minute)
	if err != nil {
		return err
	}
	fmt.Printf("\n--- QEMU exited with status %d (%d: the image halted after a good dump) ---\n", status, img.HaltedStatus(0))
	host := boot.GuestAddr.String()
	core, _ := filepath.EvalSymlinks(filepath.Join(j.dumpDir, "vmcore."+host+".last"))
	info, _ := filepath.EvalSymlinks(filepath.Join(j.dumpDir, "info."+host+".last"))
	fmt.Printf("dump:  %s\ninfo:  %s\n\n", core, info)
	if b, err := os.ReadFile(info); err == nil {
		os.Stdout.Write(b)
	}
	if err := summary(core, ready, took); err != nil {
		return err
	}
	sentRate(m.Console())
	if prof != nil {
		if err := printProfile(prof, kept); err != nil {
			return err
		}
	}
	return showReport(written, kept, core)
}

// printProfile reports the guest's samples by the functions of its ELF.
func printProfile(p *gdbprof.Profile, elfPath string) error {
	sym, err := gdbprof.OpenSymbols(elfPath)
	if err != nil {
		return err
	}
	fmt.Printf("\n--- the guest from the panic to the dump's end, sampled every %v ---\n", p.Every)
	p.Summarize(sym, 3).Write(os.Stdout, 25)
	return nil
}

// summary describes the vmcore: its ELF layout and how much was sent.
func summary(path string, ready, took time.Duration) error {
	f, err := elf.Open(path)
	if err != nil {
		return fmt.Errorf("reading the vmcore: %w", err)
	}
	defer f.Close()
	st, err := os.Stat(path)
	if err != nil {
		return err
	}
	var loads int
	var mem uint64
	for _, p := range f.Progs {
		if p.Type == elf.PT_LOAD {
			loads++
			mem += p.Filesz
		}
	}
	fmt.Printf("\nsummary: ELF core (%v, %v), %d PT_LOAD segments with %d MiB of memory; file %d MiB\n",
		f.Type, f.Machine, loads, mem>>20, st.Size()>>20)
	fmt.Printf("boot to READY %v; panic to dump complete %v (%.1f MB/s of core file)\n",
		ready.Round(time.Millisecond), took.Round(time.Millisecond), float64(st.Size())/took.Seconds()/1e6)
	return nil
}

var dumpedRe = regexp.MustCompile(`tamadump: dumped (\d+) bytes \((\d+) zero, not sent\) in (\d+) ms`)

// sentRate prints the rate of the data the image sent (the non-zero
// pages), as it measured the dump, from its console line.
func sentRate(console string) {
	m := dumpedRe.FindStringSubmatch(console)
	if m == nil {
		return
	}
	total, _ := strconv.ParseUint(m[1], 10, 64)
	zero, _ := strconv.ParseUint(m[2], 10, 64)
	ms, _ := strconv.ParseUint(m[3], 10, 64)
	fmt.Printf("the image sent %.1f MB of non-zero data in %d ms: %.1f MB/s\n", float64(total-zero)/1e6, ms, float64(total-zero)/1e3/float64(max(ms, 1)))
}
