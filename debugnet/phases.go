package debugnet

import "github.com/tamadump/tamadump/phases"

// SetPhases makes Send charge its checksum and the driver's Transmit to
// c (nil: no accounting).
func (c *Conn) SetPhases(p *phases.Counters) { c.ph = p }
