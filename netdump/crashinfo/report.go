// Package crashinfo writes core.txt for a vmcore, as FreeBSD's
// crashinfo(8) does after savecore: the dump header, the panic message,
// the crashed thread's registers and every goroutine with its state,
// wait reason and stack, read with Delve from the image ELF that the
// core names by its build ID.
//
// The vmcore came over an unauthenticated network, and Delve trusts what
// it reads. So the analysis (Analyze, behind Main) runs in a process of
// its own, limited in memory and time, and netdumpd's side (Writer) only
// starts it, keeps what it printed and says plainly how it ended.
package crashinfo

import (
	"debug/elf"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"unicode/utf8"

	"github.com/tamadump/tamadump/netdump/buildid"
	"github.com/tamadump/tamadump/netdump/symbols"
)

// Options say what to analyse.
type Options struct {
	Core    string // the vmcore
	Info    string // its info file; "" looks beside the core
	Symbols string // the symbols directory the image is looked up in
	ELF     string // the image; "" looks it up by the core's build ID
	// PrivateKey decrypts an encrypted core (vmcore_encrypted.*) for the
	// report, with KeyFile, or the key.* file beside the core.
	PrivateKey, KeyFile string
}

// Rule separates the sections, as in crashinfo's core.txt.
const Rule = "------------------------------------------------------------------------\n"

// Analyze writes the report on o.Core to w. Problems with the core or the
// image are part of the report; the error is for w failing.
func Analyze(w io.Writer, o Options) error {
	ew := &errWriter{w: w}
	report(ew, o)
	return ew.err
}

func report(w io.Writer, o Options) {
	corePath := abs(o.Core)
	infoPath := o.Info
	if infoPath == "" {
		infoPath = infoBeside(corePath)
	}
	raw, _ := os.ReadFile(infoPath) // a dump without one is still read
	info := printable(string(raw))
	fields := infoFields(info)
	host := fields["Hostname"]
	if host == "" {
		host = "the machine"
	}
	fmt.Fprintf(w, "%s dumped core - see %s\n\n", host, corePath)
	if len(info) > 0 {
		fmt.Fprintf(w, "%s:\n%s\n", infoPath, strings.TrimRight(info, "\n"))
	}

	readPath, encrypted := corePath, strings.HasPrefix(filepath.Base(corePath), encryptedPrefix)
	var c *vmcore
	var coreErr error
	if encrypted && o.PrivateKey != "" {
		p, done, err := decryptForReport(w, o, corePath)
		if err != nil {
			coreErr = fmt.Errorf("decrypting: %w", err)
		} else {
			defer done()
			readPath = p
		}
	} else {
		coreErr = readable(corePath)
	}
	if coreErr == nil {
		c, coreErr = readCore(readPath)
	}
	msg := fields["Panic String"]
	if c != nil && c.panic != "" {
		msg = printable(c.panic)
	}
	fmt.Fprintf(w, "\npanic: %s\n", msg)
	if coreErr != nil {
		fmt.Fprintf(w, "\nerror: %s: %v\n", corePath, coreErr)
	}
	if c != nil && c.truncated() {
		fmt.Fprintf(w, "\nerror: the vmcore is truncated: %d of the %d bytes its segments need; memory past that is missing\n", c.size, c.need)
	}

	exe, why := image(w, o, c, fields["Version String"])

	fmt.Fprintf(w, "\n%sregisters of the crashed thread\n\n", Rule)
	switch {
	case c == nil:
		fmt.Fprintf(w, "not shown: the core cannot be read\n")
	case !c.prstatus:
		fmt.Fprintf(w, "not shown: the core has no NT_PRSTATUS note\n")
	case c.regs == nil:
		fmt.Fprintf(w, "signal %d; registers not shown: no NT_PRSTATUS layout known for %v\n", c.signal, c.machine)
	default:
		fmt.Fprintf(w, "thread %d, signal %d%s (NT_PRSTATUS, %v)\n", c.thread, c.signal, signalName(c.signal), c.machine)
		digits := 16
		if c.class == elf.ELFCLASS32 {
			digits = 8
		}
		for i, r := range c.regs {
			sep := "  "
			if i%4 == 3 || i == len(c.regs)-1 {
				sep = "\n"
			}
			fmt.Fprintf(w, "%-8s 0x%0*x%s", r.name, digits, r.value, sep)
		}
	}

	fmt.Fprintf(w, "\n%sgoroutines\n\n", Rule)
	switch {
	case c == nil:
		fmt.Fprintf(w, "not listed: the core cannot be read\n")
	case !delveReads[c.machine]:
		fmt.Fprintf(w, "not listed: Delve reads cores of amd64, arm64, riscv64 and loong64 programs; this core is %v (%v)\n", c.machine, c.class)
	case exe == "":
		fmt.Fprintf(w, "not listed: %s\n", why)
	default:
		if err := goroutines(w, readPath, exe); err != nil {
			fmt.Fprintf(w, "error: %v\n", err)
		}
	}
	if exe != "" {
		fmt.Fprintf(w, "\n%sdebug it\n\n", Rule)
		var m elf.Machine
		if c != nil {
			m = c.machine
		}
		debugPath := corePath
		if readPath != corePath {
			fmt.Fprintf(w, "  %s\n", decryptCommand(o, corePath))
			debugPath = plainBeside(corePath)
		}
		for _, cmd := range Commands(m, exe, debugPath) {
			fmt.Fprintf(w, "  %s\n", cmd)
		}
	}
}

// Commands are the debugger command lines for a core of machine m and its
// image: Delve's when it reads such cores, and gdb's (gdb-multiarch for
// other machines than amd64; EM_NONE: not known).
func Commands(m elf.Machine, exe, core string) []string {
	gdb := "gdb-multiarch "
	if m == elf.EM_X86_64 || m == elf.EM_NONE {
		gdb = "gdb "
	}
	var cmds []string
	if delveReads[m] || m == elf.EM_NONE {
		cmds = append(cmds, "dlv core "+exe+" "+core)
	}
	return append(cmds, gdb+exe+" "+core)
}

// readable refuses what is no ELF core yet: encrypted and compressed
// vmcores, which netdumpd names vmcore_encrypted.* and *.gz / *.zst.
func readable(path string) error {
	base := filepath.Base(path)
	switch {
	case strings.HasPrefix(base, encryptedPrefix):
		key := keyBeside(path)
		return fmt.Errorf("the core is encrypted and no key was given: give crashinfo the private key "+
			"(-p <private key> [-k %s]), or decrypt it with decryptcore -p <private key> -k %s -e %s -c <vmcore> "+
			"and run crashinfo on that", key, key, path)
	case strings.HasSuffix(base, ".gz"), strings.HasSuffix(base, ".zst"):
		return errors.New("the core is compressed: decompress it (gunzip, zstd -d) and run crashinfo on the result")
	}
	return nil
}

// image finds the image ELF: o.ELF, or the one in the symbols directory
// with the build ID the core names (its note, else the KDH version
// string). It says on w what it found; why is what is missing when it
// returns no path.
func image(w io.Writer, o Options, c *vmcore, version string) (exe, why string) {
	var id buildid.ID
	from := ""
	if c != nil && c.buildID != nil {
		id, from = c.buildID, "the core's build-id note"
	} else if m := versionID.FindStringSubmatch(version); m != nil {
		if v, err := buildid.Parse(m[1]); err == nil {
			id, from = v, "the KDH version string"
		}
	}
	fmt.Fprintln(w)
	if o.ELF != "" {
		exe = abs(o.ELF)
		fmt.Fprintf(w, "image: %s (given)\n", exe)
		if have, err := buildid.File(exe); err != nil {
			fmt.Fprintf(w, "warning: %v\n", err)
		} else if id != nil && have.String() != id.String() {
			fmt.Fprintf(w, "warning: its build-id %s is not the %s the core names: what Delve reads may be wrong\n", have, id)
		}
		return exe, ""
	}
	if id == nil {
		why = "the core names no image (no build-id note, no build-id in the KDH version string); give it with -elf"
		fmt.Fprintf(w, "image: not found: %s\n", why)
		return "", why
	}
	fmt.Fprintf(w, "image: build-id %s (from %s)\n", id, from)
	if o.Symbols == "" {
		why = "no symbols directory was given (-symbols) to look for build-id " + id.String() + " in"
		fmt.Fprintf(w, "image: not found: %s\n", why)
		return "", why
	}
	exe, err := symbols.Find(abs(o.Symbols), id)
	if err != nil {
		why = fmt.Sprintf("no ELF with build-id %s in %s (make image keeps every build there; or give it with -elf)", id, abs(o.Symbols))
		fmt.Fprintf(w, "image: not found: %s\n", why)
		return "", why
	}
	fmt.Fprintf(w, "image: %s\n", exe)
	return exe, ""
}

// versionID finds the build ID in a KDH version string.
var versionID = regexp.MustCompile(regexp.QuoteMeta(buildid.Label) + `([0-9a-f]+)`)

// infoBeside is the info file netdumpd writes next to a vmcore.
func infoBeside(core string) string {
	base := filepath.Base(core)
	for _, p := range []string{encryptedPrefix, "vmcore."} {
		if rest, ok := strings.CutPrefix(base, p); ok {
			rest = strings.TrimSuffix(strings.TrimSuffix(rest, ".gz"), ".zst")
			return filepath.Join(filepath.Dir(core), "info."+rest)
		}
	}
	return ""
}

// infoFields are the "  Key: value" lines of an info file.
func infoFields(info string) map[string]string {
	m := map[string]string{}
	for _, l := range strings.Split(info, "\n") {
		if k, v, ok := strings.Cut(strings.TrimPrefix(l, "  "), ": "); ok && strings.HasPrefix(l, "  ") {
			m[k] = v
		}
	}
	return m
}

// printable is s with what a terminal would act on (control characters
// but newline and tab, invalid UTF-8) shown as '?': the header strings
// and the panic note are the crashed machine's, or an attacker's.
func printable(s string) string {
	return strings.Map(func(r rune) rune {
		if r == utf8.RuneError || r < ' ' && r != '\n' && r != '\t' || r == 0x7f || r >= 0x80 && r < 0xa0 {
			return '?'
		}
		return r
	}, s)
}

func signalName(s uint16) string {
	if n, ok := signalNames[s]; ok {
		return " (" + n + ")"
	}
	return ""
}

func abs(p string) string {
	if a, err := filepath.Abs(p); err == nil {
		return a
	}
	return p
}

// errWriter keeps the first write error and drops what follows it.
type errWriter struct {
	w   io.Writer
	err error
}

func (e *errWriter) Write(p []byte) (int, error) {
	if e.err != nil {
		return len(p), nil
	}
	_, e.err = e.w.Write(p)
	return len(p), nil
}
