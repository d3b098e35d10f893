package main

import (
	"strings"
	"testing"
)

// The build and the image are tested in board/imx6ul; here, what the
// command refuses before building.
func TestRefuses(t *testing.T) {
	for _, c := range []struct{ board, target, want string }{
		{"tamago", "evk", "make imx is for BOARD=imx6ul"},
		{"", "evk", "make imx is for BOARD=imx6ul"},
		{"imx6ul", "rpi", `no target "rpi"; choose evk or usbarmory`},
	} {
		if err := run(c.board, c.target, "./x", t.TempDir(), ""); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("board %q target %q: %v, want %q", c.board, c.target, err, c.want)
		}
	}
}
