package boot

import (
	"path/filepath"

	"github.com/tamadump/tamadump/netdump/symbols"
)

// SymbolsDir is the symbols directory of images built into dir.
func SymbolsDir(dir string) string { return filepath.Join(dir, "symbols") }

// keepSymbols stores the image's ELF in the symbols directory of dir.
func (img *Image) keepSymbols(dir string) error {
	img.Symbols = SymbolsDir(dir)
	_, err := symbols.Store(img.Symbols, img.ELF)
	return err
}
