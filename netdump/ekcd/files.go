package ekcd

import (
	"crypto/rsa"
	"errors"
	"fmt"
	"io"
	"os"
)

// maxKeyFile bounds what is read of a key file: the blob of the largest
// RSA key, padded, is far smaller.
const maxKeyFile = 64 << 10

// ReadPrivateKey reads a PEM private key file.
func ReadPrivateKey(path string) (*rsa.PrivateKey, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	k, err := ParsePrivateKey(b)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return k, nil
}

// DecryptFiles decrypts the encrypted core encPath with the key file
// keyPath into a new file outPath (replacing one only if force) and returns
// the core's length. The encrypted core and the key file are only read; on
// any failure outPath is removed again, so a failed decryption leaves
// nothing behind.
func DecryptFiles(priv *rsa.PrivateKey, keyPath, encPath, outPath string, force bool) (n int64, err error) {
	blob, err := readLimited(keyPath, maxKeyFile)
	if err != nil {
		return 0, err
	}
	d, err := NewDecryptor(priv, blob)
	if err != nil {
		return 0, fmt.Errorf("%s: %w", keyPath, err)
	}
	in, err := os.Open(encPath)
	if err != nil {
		return 0, err
	}
	defer in.Close()
	if force {
		if err := os.Remove(outPath); err != nil && !errors.Is(err, os.ErrNotExist) {
			return 0, err
		}
	}
	out, err := os.OpenFile(outPath, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return 0, err
	}
	defer func() {
		if cerr := out.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			os.Remove(outPath)
		}
	}()
	n, err = DecryptCore(out, in, d)
	if err != nil {
		return n, fmt.Errorf("%s: %w", encPath, err)
	}
	return n, out.Sync()
}

func readLimited(path string, limit int64) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, limit+1))
	if err != nil {
		return nil, err
	}
	if int64(len(b)) > limit {
		return nil, fmt.Errorf("%s: larger than %d bytes: no kernel dump key", path, limit)
	}
	return b, nil
}
