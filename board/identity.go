package board

import (
	"strings"

	"github.com/tamadump/tamadump/netdump/buildid"
)

// identify records the image's build ID for the dump, read from its own
// ELF header in memory while the machine is healthy: the core gets it as a
// build-id note and the KDH version string ends with "build-id <hex>", so
// a vmcore names the one executable that reads it. Without one the dump
// goes ahead unnamed, and the console says why. self is buildid.Self.
func (d *Dumper) identify(self func() (buildid.ID, error)) {
	id, err := self()
	if err != nil {
		d.line.S("netdump: the dump will not name its image: ").S(err.Error()).S("\r\n").Flush()
		return
	}
	d.info.BuildID = id
	d.version = strings.TrimSuffix(d.version, "\n") + " " + buildid.Label + id.String() + "\n"
}
