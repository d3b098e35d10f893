package main

import (
	"crypto/rsa"
	"fmt"
	"path/filepath"
	"strings"

	"github.com/tamadump/tamadump/netdump/ekcd"
	"github.com/tamadump/tamadump/netdump/server"
)

// decrypter decrypts each complete encrypted dump (-private-key) into
// vmcore.<host>.<n> beside its vmcore_encrypted.<host>.<n>, as decryptcore
// -n would, before the dump goes on to its report, which then reads the
// plain core. It runs on the server's Ended goroutine, never on the UDP
// path.
type decrypter struct {
	key  *rsa.PrivateKey
	logf func(server.Level, string)
	next func(server.Ended)
}

func (d *decrypter) Ended(e server.Ended) {
	if rest, ok := strings.CutPrefix(e.Core, "vmcore_encrypted."); ok && e.Reason == "success" && d.key != nil {
		plain := "vmcore." + rest
		switch {
		case e.Key == "":
			d.logf(server.LevelError, fmt.Sprintf("decryptcore: %s: no key arrived with the dump", filepath.Join(e.Dir, e.Core)))
		default:
			n, err := ekcd.DecryptFiles(d.key, filepath.Join(e.Dir, e.Key), filepath.Join(e.Dir, e.Core), filepath.Join(e.Dir, plain), false)
			if err != nil {
				d.logf(server.LevelError, "decryptcore: "+err.Error())
				break
			}
			d.logf(server.LevelInfo, fmt.Sprintf("Decrypted %s into %s (%d bytes)", filepath.Join(e.Dir, e.Core), plain, n))
			e.Core = plain
		}
	}
	d.next(e)
}
