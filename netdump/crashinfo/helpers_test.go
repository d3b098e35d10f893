package crashinfo

import (
	"bytes"
	"encoding/binary"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tamadump/tamadump/netdump/buildid"
	"github.com/tamadump/tamadump/netdump/elfcore"
	"github.com/tamadump/tamadump/netdump/server"
	"github.com/tamadump/tamadump/netdump/symbols"
)

// The test binary is also the analysis: Writers here run it with
// childEnv set, and it is then Main.
const childEnv = "CRASHINFO_TEST_CHILD=1"

func TestMain(m *testing.M) {
	if os.Getenv("CRASHINFO_TEST_CHILD") == "1" {
		os.Exit(Main(os.Args[1:], os.Stdout, os.Stderr))
	}
	os.Exit(m.Run())
}

const host = "127.0.23.2"

// fixture is a dump directory with a vmcore and its info file, and a
// symbols directory.
type fixture struct {
	dir, core, symbols string
}

func newFixture(t *testing.T, core []byte, coreName, info string) *fixture {
	t.Helper()
	f := &fixture{dir: t.TempDir(), symbols: filepath.Join(t.TempDir(), "symbols")}
	f.core = filepath.Join(f.dir, coreName)
	if err := os.WriteFile(f.core, core, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(f.dir, "info."+host+".0"), []byte(info), 0o600); err != nil {
		t.Fatal(err)
	}
	os.MkdirAll(f.symbols, 0o755)
	return f
}

// report runs the analysis of the fixture's dump as netdumpd would and
// returns core.txt.
func (f *fixture) report(t *testing.T, mod func(*Config)) string {
	t.Helper()
	written := make(chan string, 1)
	cfg := Config{
		Symbols: f.symbols,
		Command: []string{testBinary(t)},
		Env:     []string{childEnv},
		Timeout: time.Minute,
		Written: func(p string) { written <- p },
	}
	if mod != nil {
		mod(&cfg)
	}
	w := NewWriter(cfg)
	defer w.Close()
	w.Ended(server.Ended{Reason: "success", Host: host, Index: 0, Dir: f.dir,
		Info: "info." + host + ".0", Core: filepath.Base(f.core)})
	var path string
	select {
	case path = <-written:
	case <-time.After(2 * time.Minute):
		t.Fatal("no core.txt written")
	}
	if want := filepath.Join(f.dir, "core.txt."+host+".0"); path != want {
		t.Fatalf("report at %s, want %s", path, want)
	}
	if l, err := os.Readlink(filepath.Join(f.dir, "core.txt."+host+".last")); err != nil || l != "core.txt."+host+".0" {
		t.Fatalf("core.txt.%s.last -> %q (%v)", host, l, err)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func testBinary(t *testing.T) string {
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	return exe
}

// selfImage stores the test binary in the symbols directory and returns
// its build ID: a real Go executable for the cores to name.
func (f *fixture) selfImage(t *testing.T) buildid.ID {
	t.Helper()
	exe := testBinary(t)
	id, err := buildid.File(exe)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := symbols.Store(f.symbols, exe); err != nil {
		t.Fatal(err)
	}
	return id
}

func info(version, panic string) string {
	return "Dump from " + host + " [" + host + "]\n  Architecture: amd64\n  Hostname: testbox\n  Version String: " + version +
		"\n  Panic String: " + panic + "\n  Header Parity Check: Pass\nMissing ranges: none\nDump complete\n"
}

// amd64Core is a core as the image writes it, of memory that is no Go
// program's.
func amd64Core(t *testing.T, id buildid.ID, panic string) []byte {
	t.Helper()
	mem := bytes.Repeat([]byte("not a Go heap. "), 3*elfcore.Page/15+1)[:3*elfcore.Page]
	segs := []elfcore.Segment{{Phys: 0x400000, Virt: 0x400000, Data: mem}}
	c := elfcore.New(len(segs))
	in := elfcore.Info{Arch: &elfcore.AMD64, Signal: 6, PID: 1, Panic: []byte(panic), BuildID: id}
	in.Regs[elfcore.RIP], in.Regs[elfcore.RSP], in.Regs[elfcore.FSBase] = 0x401234, 0x401f00, 0x402000
	if err := c.Build(segs, &in); err != nil {
		t.Fatal(err)
	}
	b := make([]byte, c.Size())
	if _, err := c.ReadAt(b, 0); err != nil {
		t.Fatal(err)
	}
	return b
}

// armCore is a 32-bit ARM core (ELFCLASS32, EM_ARM) with Linux's ARM
// struct elf_prstatus (148 bytes: pr_pid at 24, 18 registers at 72), the
// panic note and a build-id note, and one PT_LOAD.
func armCore(id buildid.ID, panic string) []byte {
	le := binary.LittleEndian
	note := func(name string, typ uint32, desc []byte) []byte {
		n := make([]byte, 12)
		le.PutUint32(n, uint32(len(name)+1))
		le.PutUint32(n[4:], uint32(len(desc)))
		le.PutUint32(n[8:], typ)
		n = append(n, name...)
		n = append(n, make([]byte, 4-len(name)%4)...)
		n = append(n, desc...)
		return append(n, make([]byte, (4-len(desc)%4)%4)...)
	}
	pr := make([]byte, 148)
	le.PutUint16(pr[12:], 11) // SIGSEGV
	le.PutUint32(pr[24:], 1)
	for i := range 18 {
		le.PutUint32(pr[72+4*i:], uint32(0x1000+i))
	}
	le.PutUint32(pr[72+4*15:], 0x80012345) // pc
	pn := make([]byte, elfcore.MaxPanic)
	copy(pn, panic)
	notes := append(note("CORE", 1, pr), note("TAMADUMP", elfcore.NotePanic, pn)...)
	notes = append(notes, note("TAMADUMP", elfcore.NoteBuildID, id)...)

	const ehdr, phdr = 52, 32
	dataOff := uint32(4096)
	h := make([]byte, dataOff)
	copy(h, "\x7fELF\x01\x01\x01")
	le.PutUint16(h[16:], 4)  // ET_CORE
	le.PutUint16(h[18:], 40) // EM_ARM
	le.PutUint32(h[20:], 1)
	le.PutUint32(h[28:], ehdr) // e_phoff
	le.PutUint16(h[40:], ehdr)
	le.PutUint16(h[42:], phdr)
	le.PutUint16(h[44:], 2)
	p := h[ehdr:]
	le.PutUint32(p, 4) // PT_NOTE
	le.PutUint32(p[4:], ehdr+2*phdr)
	le.PutUint32(p[16:], uint32(len(notes)))
	le.PutUint32(p[28:], 4)
	p = h[ehdr+phdr:]
	le.PutUint32(p, 1) // PT_LOAD
	le.PutUint32(p[4:], dataOff)
	le.PutUint32(p[8:], 0x80000000)
	le.PutUint32(p[12:], 0x80000000)
	le.PutUint32(p[16:], 4096)
	le.PutUint32(p[20:], 4096)
	le.PutUint32(p[24:], 7)
	le.PutUint32(p[28:], 4096)
	copy(h[ehdr+2*phdr:], notes)
	return append(h, make([]byte, 4096)...)
}

// has fails unless the report contains every one of want.
func has(t *testing.T, report string, want ...string) {
	t.Helper()
	for _, w := range want {
		if !strings.Contains(report, w) {
			t.Errorf("core.txt lacks %q", w)
		}
	}
	if t.Failed() {
		t.Logf("core.txt:\n%s", report)
	}
}
