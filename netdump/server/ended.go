package server

import (
	"net/netip"
	"path/filepath"

	"github.com/tamadump/tamadump/netdump/wire"
)

// Ended describes a dump that has ended, for Config.Ended: where its
// files are and what its header said.
type Ended struct {
	// Reason is the handler's: "success", "timeout" or "error".
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
}

// dumpEnded reports the end of c's dump to Config.Ended, after its files
// are closed.
func (c *session) dumpEnded(reason string) {
	if c.s.cfg.Ended == nil {
		return
	}
	e := Ended{
		Reason: reason, Client: c.ip, Host: c.host, Index: c.files.index,
		Dir:  filepath.Join(c.s.cfg.Dir, c.files.rel),
		Info: c.files.infoBase(c.host), Core: c.name,
	}
	if c.key != nil {
		e.Key = c.key.Name()
	}
	if c.kdhOK {
		k := c.kdh
		e.KDH = &k
	}
	c.s.cfg.Ended(e)
}
