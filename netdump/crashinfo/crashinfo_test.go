package crashinfo

import (
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tamadump/tamadump/netdump/elfcore"
	"github.com/tamadump/tamadump/netdump/server"
)

// A core whose memory is no Go program: the image is found by the core's
// note, registers are shown, and Delve's failure to follow the runtime is
// a clear line.
func TestCorruptCore(t *testing.T) {
	f := newFixture(t, nil, "vmcore."+host+".0", "")
	id := f.selfImage(t)
	os.WriteFile(f.core, amd64Core(t, id, "boom"), 0o600)
	os.WriteFile(filepath.Join(f.dir, "info."+host+".0"), []byte(info("tamadump test", "boom")), 0o600)
	r := f.report(t, nil)
	exe := filepath.Join(f.symbols, id.String(), filepath.Base(testBinary(t)))
	has(t, r, "testbox dumped core - see "+f.core,
		"Version String: tamadump test",
		"\npanic: boom\n",
		"image: build-id "+id.String()+" (from the core's build-id note)",
		"image: "+exe+"\n",
		"thread 1, signal 6 (SIGABRT) (NT_PRSTATUS, EM_X86_64)",
		"rip      0x0000000000401234",
		"goroutines\n\nerror: Delve cannot list the goroutines: ",
		"dlv core "+exe+" "+f.core,
	)
}

// The image the core names is not in the symbols directory: the report
// says which build ID was looked for, and where.
func TestMissingELF(t *testing.T) {
	id := []byte("0123456789abcdefghij")
	f := newFixture(t, amd64Core(t, id, "boom"), "vmcore."+host+".0", info("tamadump test", "boom"))
	r := f.report(t, nil)
	has(t, r, "image: not found: no ELF with build-id 303132333435363738396162636465666768696a in "+f.symbols,
		"goroutines\n\nnot listed: no ELF with build-id 303132333435363738396162636465666768696a",
		"rip      0x0000000000401234")
}

// Without the note (an image that could not read its ID, or another
// writer's core) the KDH version string names the image; with neither,
// the report says so.
func TestBuildIDFromKDH(t *testing.T) {
	f := newFixture(t, amd64Core(t, nil, "boom"), "vmcore."+host+".0",
		info("tamadump dev (stockgo board, go1.26.8) build-id 303132333435363738396162636465666768696a", "boom"))
	has(t, f.report(t, nil), "image: build-id 303132333435363738396162636465666768696a (from the KDH version string)")

	f = newFixture(t, amd64Core(t, nil, "boom"), "vmcore."+host+".0", info("FreeBSD 14.0-RELEASE", "page fault"))
	has(t, f.report(t, nil), "image: not found: the core names no image")
}

func TestTruncated(t *testing.T) {
	core := amd64Core(t, []byte("0123456789abcdefghij"), "boom")
	f := newFixture(t, core[:len(core)-elfcore.Page], "vmcore."+host+".0", info("tamadump test", "boom"))
	has(t, f.report(t, nil), "error: the vmcore is truncated: ")

	// Cut inside the header: not even an ELF file any more.
	f = newFixture(t, core[:40], "vmcore."+host+".0", info("tamadump test", "boom"))
	has(t, f.report(t, nil), "not an ELF core", "panic: boom", "goroutines\n\nnot listed: the core cannot be read")
}

func TestGarbage(t *testing.T) {
	junk := make([]byte, 64<<10)
	r := rand.New(rand.NewPCG(1, 2))
	for i := range junk {
		junk[i] = byte(r.Uint32())
	}
	f := newFixture(t, junk, "vmcore."+host+".0", info("tamadump test", "boom"))
	has(t, f.report(t, nil), "error: "+f.core+": not an ELF core", "registers of the crashed thread\n\nnot shown: the core cannot be read")
}

// A 32-bit ARM core, which Delve does not read: the header, the panic
// message and the registers, and a plain reason for no goroutines.
func TestARMCore(t *testing.T) {
	id := []byte("0123456789abcdefghij")
	f := newFixture(t, armCore(id, "Fatal trap: data abort"), "vmcore."+host+".0", info("tamadump dev (imx6ul board)", "data abort"))
	has(t, f.report(t, nil),
		"panic: Fatal trap: data abort",
		"thread 1, signal 11 (SIGSEGV) (NT_PRSTATUS, EM_ARM)",
		"r0       0x00001000", "pc       0x80012345", "cpsr     0x00001010",
		"image: build-id 303132333435363738396162636465666768696a (from the core's build-id note)",
		"not listed: Delve reads cores of amd64, arm64, riscv64 and loong64 programs; this core is EM_ARM (ELFCLASS32)")
}

// What the crashed machine wrote reaches the report without anything a
// terminal would act on.
func TestPrintable(t *testing.T) {
	f := newFixture(t, amd64Core(t, nil, "boom\x1b[2J\x07"), "vmcore."+host+".0", info("tamadump \x1b]0;owned\x07", "boom"))
	r := f.report(t, nil)
	has(t, r, "panic: boom?[2J?\n", "Version String: tamadump ?]0;owned?\n")
	if strings.ContainsAny(r, "\x1b\x07") {
		t.Errorf("control characters in core.txt:\n%q", r)
	}
}

func TestEncrypted(t *testing.T) {
	f := newFixture(t, []byte("ciphertext"), "vmcore_encrypted."+host+".0", info("FreeBSD 14.0-RELEASE", "page fault"))
	has(t, f.report(t, nil), "the core is encrypted and no key was given", "key."+host+".0", "panic: page fault")
}

// The analysis is bounded: killed after its time, and out of memory
// beyond its limit; the report says which.
func TestBounds(t *testing.T) {
	f := newFixture(t, nil, "vmcore."+host+".0", info("tamadump test", "boom"))
	id := f.selfImage(t)
	os.WriteFile(f.core, amd64Core(t, id, "boom"), 0o600)
	has(t, f.report(t, func(c *Config) { c.Timeout = time.Nanosecond }), "error: the analysis did not finish within 1ns and was killed")
	has(t, f.report(t, func(c *Config) { c.MaxMemory = 256 << 20 }), "error: the analysis failed (exit status 2): ", "(it may use 256 MiB of address space and 61 s of CPU)")
}

// Dumps beyond the queue, and after Close, still get a report that says
// they were not analysed.
func TestNotAnalysed(t *testing.T) {
	f := newFixture(t, []byte("x"), "vmcore."+host+".0", info("tamadump test", "boom"))
	written := make(chan string, queue+2)
	started := filepath.Join(f.dir, "started")
	// An analysis that hangs, once it has said it runs.
	hang := []string{"sh", "-c", "touch " + started + "; exec sleep 60", "sh"}
	w := NewWriter(Config{Command: hang, Timeout: time.Minute, Written: func(p string) { written <- p }})
	e := server.Ended{Reason: "success", Host: host, Dir: f.dir, Info: "info." + host + ".0", Core: "vmcore." + host + ".0"}
	for i := 0; i <= queue+1; i++ { // one runs, queue wait, one is refused
		e.Index = i
		w.Ended(e)
	}
	p := <-written
	b, _ := os.ReadFile(p)
	has(t, string(b), "error: not analysed: 16 dumps were already waiting for their analysis")
	for _, err := os.Stat(started); err != nil; _, err = os.Stat(started) {
		time.Sleep(5 * time.Millisecond)
	}
	w.Close()
	e.Index = 99
	w.Ended(e)
	for range queue + 1 {
		<-written
	}
	b, _ = os.ReadFile(filepath.Join(f.dir, "core.txt."+host+".99"))
	has(t, string(b), "vmcore."+host+".0: no report", "error: not analysed: netdumpd is shutting down")
	b, _ = os.ReadFile(filepath.Join(f.dir, "core.txt."+host+".0"))
	has(t, string(b), "error: the analysis was stopped: netdumpd is shutting down")
}
