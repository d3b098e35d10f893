package client

import (
	"time"

	"github.com/tamadump/tamadump/phases"
)

// Phases is where the last dump's time went, in phases.Unit.
func (c *Client) Phases() *phases.Counters { return &c.ph }

// printPhases writes the last dump's time per phase on one console line,
// in microseconds of the dump's elapsed time (the cycles scaled to it):
//
//	netdump phases (us): zero-scan Z copy C checksum S driver D ack-wait W other O of T (N TSC cycles)
func (c *Client) printPhases() {
	us := uint64(c.stats.Elapsed / time.Microsecond)
	c.line.S("netdump phases (us):")
	for p := phases.ZeroScan; p < phases.N; p++ {
		c.line.S(" ").S(p.String()).S(" ").U(c.ph.Scaled(p, us))
	}
	c.line.S(" other ").U(c.ph.Scaled(phases.Other, us)).S(" of ").U(us).
		S(" (").U(c.ph.Total()).S(" ").S(phases.Unit).S(")\r\n").Flush()
}
