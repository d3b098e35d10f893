// Command decryptcore decrypts an encrypted kernel dump, with FreeBSD's
// decryptcore(8) flags:
//
//	decryptcore [-fv] -p privatekey -k keyfile -e encryptedcore -c core
//	decryptcore [-fv] [-d crashdir] -p privatekey -n dumpnr
//
// With -n the files are crashdir/key.N, crashdir/vmcore_encrypted.N and
// crashdir/vmcore.N (crashdir defaults to /var/crash). N is savecore's
// number or netdumpd's host.number (key.<host>.<n>,
// vmcore_encrypted.<host>.<n>). The core is written to a new file (-f
// replaces an existing one); on any error nothing is left of it and the
// encrypted core is untouched.
package main

import (
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/tamadump/tamadump/netdump/ekcd"
)

func main() { os.Exit(run(os.Args[1:], os.Stderr)) }

func run(args []string, stderr io.Writer) int {
	fs := flag.NewFlagSet("decryptcore", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var (
		priv     = fs.String("p", "", "private key `file` (PEM)")
		keyFile  = fs.String("k", "", "key `file` of the dump")
		enc      = fs.String("e", "", "encrypted core `file`")
		core     = fs.String("c", "", "decrypted core `file` to write")
		crashdir = fs.String("d", "", "crash `dir`ectory (with -n; default /var/crash)")
		dumpnr   = fs.String("n", "", "dump `number` (N of key.N, or host.N of netdumpd's files)")
		force    = fs.Bool("f", false, "replace an existing core")
		verbose  = fs.Bool("v", false, "say what was decrypted")
	)
	usage := func() int {
		fmt.Fprint(stderr, "usage: decryptcore [-fv] -p privatekeyfile -k keyfile -e encryptedcore -c core\n"+
			"       decryptcore [-fv] [-d crashdir] -p privatekeyfile -n dumpnr\n")
		return 1
	}
	if err := fs.Parse(args); err != nil || fs.NArg() != 0 {
		return usage()
	}
	if *crashdir != "" || *dumpnr != "" {
		if *keyFile != "" || *enc != "" || *core != "" || *dumpnr == "" || !validNumber(*dumpnr) {
			return usage()
		}
		dir := *crashdir
		if dir == "" {
			dir = "/var/crash"
		}
		*keyFile = filepath.Join(dir, "key."+*dumpnr)
		*enc = filepath.Join(dir, "vmcore_encrypted."+*dumpnr)
		*core = filepath.Join(dir, "vmcore."+*dumpnr)
	}
	if *priv == "" || *keyFile == "" || *enc == "" || *core == "" {
		return usage()
	}
	k, err := ekcd.ReadPrivateKey(*priv)
	if err != nil {
		fmt.Fprintf(stderr, "decryptcore: %v\n", err)
		return 1
	}
	n, err := ekcd.DecryptFiles(k, *keyFile, *enc, *core, *force)
	if err != nil {
		fmt.Fprintf(stderr, "decryptcore: %v\n", err)
		return 1
	}
	if *verbose {
		fmt.Fprintf(stderr, "decryptcore: %s: %d bytes decrypted with %s into %s\n", *enc, n, *keyFile, *core)
	}
	return 0
}

// validNumber accepts savecore's N and netdumpd's host.N: a name without
// path separators that ends in a number.
func validNumber(s string) bool {
	if strings.ContainsAny(s, "/\\") || s == "." || s == ".." {
		return false
	}
	i := strings.LastIndexByte(s, '.') + 1
	if i == len(s) {
		return false
	}
	for _, c := range s[i:] {
		if c < '0' || c > '9' {
			return false
		}
	}
	return true
}
