//go:build tamago && arm

package main

import "github.com/tamadump/tamadump/board/imx6ul"

// imxMachine is the i.MX6UL board.
type imxMachine struct{ *imx6ul.Machine }

func newMachine() machine { return imxMachine{imx6ul.New()} }

func (imxMachine) Hostname() string { return hostname }

// Mallocs cannot be read on the crash stack (runtime/metrics takes a
// semaphore), and need not be: the board runs the crash function with
// the runtime dying, where any allocation throws.
func (imxMachine) Mallocs() (uint64, bool) { return 0, false }
