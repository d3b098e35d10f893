package server

import (
	"net/netip"

	"github.com/tamadump/tamadump/netdump/wire"
)

// Ended describes a dump that has ended, for Config.Ended: where its
// files are and what its header said.
type Ended struct {
	// Reason is the handler's: "success", "timeout" or "error". A dump
	// interrupted by Close, or found in progress by a restarted server,
	// ends as "timeout", as with netdumpd; its info file says which.
	Reason string
	Client netip.Addr
	Host   string // the <host> of the file names
	Index  int    // their <n>
	// Dir is the directory of the files (Config.Dir joined with the
	// dump's path); Info, Core and Key are file names in it, Key empty
	// when no key arrived.
	Dir             string
	Info, Core, Key string
	// KDH is the kernel dump header, nil when no whole header arrived.
	KDH *wire.KernelDumpHeader
	// Recovered: a restarted server found this dump left in progress
	// (Client is then read back from the info file; the handler script
	// is not run for it).
	Recovered bool
}
