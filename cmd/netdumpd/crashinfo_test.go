package main

import (
	"bytes"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tamadump/tamadump/netdump/buildid"
	"github.com/tamadump/tamadump/netdump/elfcore"
	"github.com/tamadump/tamadump/netdump/server/servertest"
	"github.com/tamadump/tamadump/netdump/symbols"
	"github.com/tamadump/tamadump/netdump/wire"
)

// TestReport: netdumpd -symbols writes core.txt beside a complete dump,
// by running its own crashinfo sub-command, and finds the image the core
// names. The image is netdumpd itself, a real Go ELF; the core's memory
// is none of its, which the report says.
func TestReport(t *testing.T) {
	tmp := t.TempDir()
	dumps, syms := filepath.Join(tmp, "crash"), filepath.Join(tmp, "symbols")
	os.Mkdir(dumps, 0o755)
	kept, err := symbols.Store(syms, binary)
	if err != nil {
		t.Fatal(err)
	}
	id, _ := buildid.File(binary)

	ackPort := freePort(t, net.IPv4(127, 0, 23, 2))
	probe, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 23, 1)})
	if err != nil {
		t.Fatal(err)
	}
	port := probe.LocalAddr().(*net.UDPAddr).Port
	probe.Close()
	var out bytes.Buffer
	cmd := exec.Command(binary, "-D", "-a", "127.0.23.1", "-d", dumps, "-P", filepath.Join(tmp, "pid"),
		"-port", fmt.Sprint(port), "-ackport", fmt.Sprint(ackPort), "-symbols", syms)
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()

	conn, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 23, 2), Port: ackPort})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	c := servertest.New(servertest.UDP(conn), netip.AddrPortFrom(netip.MustParseAddr("127.0.23.1"), uint16(port)))
	deadline := time.Now().Add(10 * time.Second)
	for c.Herald("") != nil { // netdumpd may still be starting
		if time.Now().After(deadline) {
			t.Fatalf("no HERALD answered:\n%s", out.String())
		}
	}
	core := imageCore(t, id)
	var msgs []servertest.Msg
	for off := 0; off < len(core); off += 1400 {
		msgs = append(msgs, servertest.Msg{Type: wire.VMCore, Offset: uint64(off), Payload: core[off:min(off+1400, len(core))]})
	}
	if err := c.Send(msgs...); err != nil {
		t.Fatal(err)
	}
	if err := c.Finish(); err != nil {
		t.Fatal(err)
	}
	host := "127.0.23.2"
	if names, err := net.LookupAddr(host); err == nil && len(names) > 0 {
		host, _, _ = strings.Cut(names[0], ".")
	}
	var report []byte
	for deadline := time.Now().Add(time.Minute); report == nil; time.Sleep(20 * time.Millisecond) {
		report, _ = os.ReadFile(filepath.Join(dumps, "core.txt."+host+".last"))
		if time.Now().After(deadline) {
			t.Fatalf("no core.txt.%s.last; netdumpd said:\n%s", host, out.String())
		}
	}
	for _, want := range []string{"dumped core - see " + filepath.Join(dumps, "vmcore."+host+".0"),
		"panic: boom", "image: " + kept + "\n", "rip      0x0000000000401234",
		"error: Delve cannot list the goroutines"} {
		if !bytes.Contains(report, []byte(want)) {
			t.Errorf("core.txt lacks %q:\n%s", want, report)
		}
	}

	// The sub-command writes the same report by hand.
	byHand, err := exec.Command(binary, "crashinfo", "-symbols", syms, filepath.Join(dumps, "vmcore."+host+".0")).Output()
	if err != nil || !bytes.Equal(byHand, report) {
		t.Errorf("netdumpd crashinfo (%v) differs from core.txt:\n%s", err, byHand)
	}
}

// imageCore is a core as the image writes it, naming the image id.
func imageCore(t *testing.T, id buildid.ID) []byte {
	segs := []elfcore.Segment{{Phys: 0x400000, Virt: 0x400000, Data: bytes.Repeat([]byte{0xcc}, elfcore.Page)}}
	c := elfcore.New(1)
	in := elfcore.Info{Arch: &elfcore.AMD64, Signal: 6, PID: 1, Panic: []byte("boom"), BuildID: id}
	in.Regs[elfcore.RIP] = 0x401234
	if err := c.Build(segs, &in); err != nil {
		t.Fatal(err)
	}
	b := make([]byte, c.Size())
	c.ReadAt(b, 0)
	return b
}
