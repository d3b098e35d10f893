package crashinfo

import (
	"flag"
	"fmt"
	"io"
	"runtime/debug"

	"golang.org/x/sys/unix"
)

const usageText = `usage: crashinfo [-symbols DIR] [-elf FILE] [-info FILE] [-p PRIVATEKEY [-k KEYFILE]] [-max-memory BYTES] [-max-cpu SECONDS] vmcore

Writes core.txt for the vmcore to standard output: the dump header (from
the info file beside it), the panic message, the crashed thread's
registers and every goroutine with its stack, read with Delve from the
image ELF the core names by its build ID.

  -symbols DIR   the symbols directory the image is looked up in
  -elf FILE      the image ELF, instead of looking it up
  -info FILE     the info file (default: info.<host>.<n> beside the vmcore)
  -p FILE        the RSA private key (PEM) that decrypts an encrypted
                 vmcore (vmcore_encrypted.*) for the report
  -k FILE        its key file (default: key.<host>.<n> beside the vmcore)
  -max-memory N  limit this process's address space to N bytes (RLIMIT_AS)
  -max-cpu S     limit this process to S seconds of CPU (RLIMIT_CPU)
`

// Main is the crashinfo command (cmd/crashinfo, and netdumpd's crashinfo
// sub-command, which netdumpd runs after each dump). The limits are set
// before the vmcore is opened.
func Main(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("crashinfo", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	var o Options
	fs.StringVar(&o.Symbols, "symbols", "", "")
	fs.StringVar(&o.ELF, "elf", "", "")
	fs.StringVar(&o.Info, "info", "", "")
	fs.StringVar(&o.PrivateKey, "p", "", "")
	fs.StringVar(&o.KeyFile, "k", "", "")
	maxMem := fs.Uint64("max-memory", 0, "")
	maxCPU := fs.Uint64("max-cpu", 0, "")
	if err := fs.Parse(args); err != nil || fs.NArg() != 1 {
		if err != nil {
			fmt.Fprintf(stderr, "crashinfo: %v\n", err)
		}
		fmt.Fprint(stderr, usageText)
		return 2
	}
	o.Core = fs.Arg(0)
	if err := limit(*maxMem, *maxCPU); err != nil {
		fmt.Fprintf(stderr, "crashinfo: %v\n", err)
		return 1
	}
	if err := Analyze(stdout, o); err != nil {
		fmt.Fprintf(stderr, "crashinfo: writing the report: %v\n", err)
		return 1
	}
	return 0
}

// limit bounds this process: the kernel refuses address space beyond
// mem (the Go runtime then dies with "out of memory", after collecting
// harder as it nears the limit) and kills it after cpu seconds of CPU.
func limit(mem, cpu uint64) error {
	if mem > 0 {
		if err := unix.Setrlimit(unix.RLIMIT_AS, &unix.Rlimit{Cur: mem, Max: mem}); err != nil {
			return fmt.Errorf("RLIMIT_AS: %w", err)
		}
		debug.SetMemoryLimit(int64(mem / 4))
	}
	if cpu > 0 {
		// SIGXCPU at the soft limit, SIGKILL a second later.
		if err := unix.Setrlimit(unix.RLIMIT_CPU, &unix.Rlimit{Cur: cpu, Max: cpu + 1}); err != nil {
			return fmt.Errorf("RLIMIT_CPU: %w", err)
		}
	}
	return nil
}
