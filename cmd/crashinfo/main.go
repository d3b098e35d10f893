// Command crashinfo writes the post-mortem report of a vmcore (core.txt,
// as FreeBSD's crashinfo(8)): the dump header, the panic message, the
// crashed thread's registers and every goroutine with its stack, read
// with Delve from the image ELF that the core names by its build ID.
//
//	crashinfo -symbols build/symbols dumps/vmcore.127.0.9.2.last
//
// netdumpd -symbols DIR writes the same report beside each dump it
// receives.
package main

import (
	"os"

	"github.com/tamadump/tamadump/netdump/crashinfo"
)

func main() { os.Exit(crashinfo.Main(os.Args[1:], os.Stdout, os.Stderr)) }
