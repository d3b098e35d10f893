package crashinfo

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/tamadump/tamadump/netdump/ekcd"
)

// encryptedPrefix is how netdumpd (and savecore) name an encrypted core.
const encryptedPrefix = "vmcore_encrypted."

// keyBeside is the key file of an encrypted core, and plainBeside the name
// decryptcore -n gives its plaintext.
func keyBeside(core string) string {
	return filepath.Join(filepath.Dir(core), "key."+strings.TrimPrefix(filepath.Base(core), encryptedPrefix))
}

func plainBeside(core string) string {
	return filepath.Join(filepath.Dir(core), "vmcore."+strings.TrimPrefix(filepath.Base(core), encryptedPrefix))
}

// decryptForReport decrypts an encrypted core with o.PrivateKey and the key
// file (o.KeyFile, else the one beside it) into a temporary file that the
// report reads; done removes it. The encrypted core is only read.
func decryptForReport(w io.Writer, o Options, core string) (path string, done func(), err error) {
	key := o.KeyFile
	if key == "" {
		key = keyBeside(core)
	}
	priv, err := ekcd.ReadPrivateKey(o.PrivateKey)
	if err != nil {
		return "", nil, err
	}
	f, err := os.CreateTemp("", "crashinfo-vmcore-")
	if err != nil {
		return "", nil, err
	}
	tmp := f.Name()
	f.Close()
	if _, err := ekcd.DecryptFiles(priv, key, core, tmp, true); err != nil {
		return "", nil, err
	}
	fmt.Fprintf(w, "\ndecrypted for this report with %s and %s\n", abs(o.PrivateKey), abs(key))
	return tmp, func() { os.Remove(tmp) }, nil
}

// decryptCommand is the decryptcore command line that writes the
// plaintext of an encrypted core beside it, for the debuggers.
func decryptCommand(o Options, core string) string {
	key := o.KeyFile
	if key == "" {
		key = keyBeside(core)
	}
	return "decryptcore -p " + abs(o.PrivateKey) + " -k " + abs(key) + " -e " + core + " -c " + plainBeside(core)
}
