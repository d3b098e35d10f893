//go:build linux && amd64 && !tamago

package target

import (
	"fmt"

	"github.com/tamadump/tamadump/board"
	"github.com/tamadump/tamadump/board/stockgo"
)

// New is the stock-Go board; it fails unless the program runs on the shim.
func New() (board.Machine, error) {
	m, err := stockgo.New()
	if err != nil {
		return nil, fmt.Errorf("%w: boot it with the shim (make qemu BOARD=stockgo)", err)
	}
	return m, nil
}
