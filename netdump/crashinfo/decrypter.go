package crashinfo

import (
	"crypto/rsa"
	"fmt"
	"path/filepath"
	"strings"

	"github.com/tamadump/tamadump/netdump/ekcd"
	"github.com/tamadump/tamadump/netdump/server"
)

// Decrypter is netdumpd -private-key: it decrypts each complete encrypted
// dump into vmcore.<host>.<n> beside its vmcore_encrypted.<host>.<n>, as
// decryptcore -n would, before the dump goes on to Next (the report),
// which then reads the plain core. Its Ended runs on the server's Ended
// goroutine, never on the UDP path. With no Key it only passes dumps on.
type Decrypter struct {
	Key  *rsa.PrivateKey
	Log  func(server.Level, string)
	Next func(server.Ended)
}

// Ended is a server.Config.Ended.
func (d *Decrypter) Ended(e server.Ended) {
	if rest, ok := strings.CutPrefix(e.Core, encryptedPrefix); ok && e.Reason == "success" && d.Key != nil {
		plain := "vmcore." + rest
		switch {
		case e.Key == "":
			d.Log(server.LevelError, fmt.Sprintf("decryptcore: %s: no key arrived with the dump", filepath.Join(e.Dir, e.Core)))
		default:
			n, err := ekcd.DecryptFiles(d.Key, filepath.Join(e.Dir, e.Key), filepath.Join(e.Dir, e.Core), filepath.Join(e.Dir, plain), false)
			if err != nil {
				d.Log(server.LevelError, "decryptcore: "+err.Error())
				break
			}
			d.Log(server.LevelInfo, fmt.Sprintf("Decrypted %s into %s (%d bytes)", filepath.Join(e.Dir, e.Core), plain, n))
			e.Core = plain
		}
	}
	d.Next(e)
}
