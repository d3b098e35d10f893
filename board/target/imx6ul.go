//go:build tamago && arm

package target

import (
	"github.com/tamadump/tamadump/board"
	"github.com/tamadump/tamadump/board/imx6ul"
)

// New is the i.MX6UL board.
func New() (board.Machine, error) { return imx6ul.New(), nil }
