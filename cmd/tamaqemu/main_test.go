package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/tamadump/tamadump/qemu/boot"
)

// TestMainJob runs what `make qemu BOARD=stockgo` runs and checks that the
// dump it reports is there.
func TestMainJob(t *testing.T) {
	if _, err := exec.LookPath("qemu-system-x86_64"); err != nil {
		t.Skip("qemu-system-x86_64 not installed")
	}
	dumps, out := t.TempDir(), t.TempDir()
	if err := run(job{board: boot.StockGo, nic: "e1000", ram: 64, dumpDir: dumps, out: out, msg: "main job"}); err != nil {
		t.Fatal(err)
	}
	info, err := os.ReadFile(filepath.Join(dumps, "info."+boot.GuestAddr.String()+".last"))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(info), "Panic String: main job") || !strings.Contains(string(info), "Dump complete") {
		t.Fatalf("info:\n%s", info)
	}
}

// TestProfile: -profile samples the guest's dump and names its
// functions: the frame walk reaches the client's Dump from most samples,
// and the runtime's clock, a system call into the shim on this board,
// is not where the time goes (it was in 18 % of samples before the board
// gave the dump the TSC).
func TestProfile(t *testing.T) {
	if _, err := exec.LookPath("qemu-system-x86_64"); err != nil {
		t.Skip("qemu-system-x86_64 not installed")
	}
	var err error
	said := captureStdout(t, func() {
		err = run(job{board: boot.StockGo, nic: "e1000", ram: 64, dumpDir: t.TempDir(), out: t.TempDir(), msg: "profiled", fill: "16", profile: 2 * time.Millisecond})
	})
	if err != nil {
		t.Fatalf("%v\n%s", err, said)
	}
	i := strings.Index(said, "--- the guest from the panic to the dump's end, sampled every 2ms ---")
	if i < 0 {
		t.Fatalf("no profile:\n%s", said)
	}
	report := said[i:]
	share := func(fn string) float64 {
		m := regexp.MustCompile(`(?m)^\s+([0-9.]+)% +[0-9.]+%  ` + regexp.QuoteMeta(fn) + `$`).FindStringSubmatch(report)
		if m == nil {
			return 0
		}
		v, _ := strconv.ParseFloat(m[1], 64)
		return v
	}
	if n := regexp.MustCompile(`(\d+) samples;`).FindStringSubmatch(report); n == nil || len(n[1]) < 2 {
		t.Errorf("fewer than 10 samples:\n%s", report)
	}
	if s := share("github.com/tamadump/tamadump/netdump/client.(*Client).Dump"); s < 50 {
		t.Errorf("the client's Dump is in %.1f%% of samples:\n%s", s, report)
	}
	if s := share("runtime.nanotime1"); s > 5 {
		t.Errorf("the runtime's clock is in %.1f%% of samples:\n%s", s, report)
	}
}
