//go:build tamago && amd64

package target

import (
	"github.com/tamadump/tamadump/board"
	"github.com/tamadump/tamadump/board/tamago"
)

// New is the TamaGo microvm board.
func New() (board.Machine, error) { return tamago.New(), nil }
