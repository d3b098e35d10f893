// Package phases accounts a dump's time to what it was spent on — scanning
// for zero pages, copying payloads, checksumming, the driver's transmit,
// waiting for acknowledgements, and the rest — in CPU cycles (the TSC on
// amd64; elsewhere the runtime's nanosecond clock). A Counters is one
// fixed array and Enter reads the counter once, so accounting neither
// allocates nor needs a lock: it runs after a crash.
package phases

import (
	"math/bits"
	"time"
)

// Phase is one kind of work.
type Phase uint8

const (
	Other    Phase = iota // protocol logic: everything not below
	ZeroScan              // comparing memory with zeros
	Copy                  // copying memory into the datagram (and summing it, in the same pass)
	Checksum              // the rest of the UDP checksum
	Driver                // the NIC driver's Transmit
	Wait                  // polling for and handling acknowledgements
	N                     // the number of phases
)

var names = [N]string{"other", "zero-scan", "copy", "checksum", "driver", "ack-wait"}

// String is the phase's name as the console line prints it.
func (p Phase) String() string {
	if p >= N {
		return "?"
	}
	return names[p]
}

// Counters accumulates cycles per phase. The zero value is ready; a nil
// *Counters accounts nothing.
type Counters struct {
	cycles [N]uint64
	cur    Phase
	since  uint64
	start  uint64
	on     bool
}

// Start clears the counters and enters Other.
func (c *Counters) Start() {
	if c == nil {
		return
	}
	*c = Counters{cur: Other, on: true}
	c.since = Now()
	c.start = c.since
}

// Enter charges the cycles since the last Enter to the current phase,
// makes p current and returns the phase it replaced, so that nested work
// (a retransmission while waiting) is charged to itself and the caller
// restores the outer phase with Enter(prev).
func (c *Counters) Enter(p Phase) Phase {
	if c == nil || !c.on {
		return p
	}
	t := Now()
	c.cycles[c.cur] += t - c.since
	prev := c.cur
	c.cur, c.since = p, t
	return prev
}

// Stop charges the current phase and ends the accounting.
func (c *Counters) Stop() {
	if c == nil || !c.on {
		return
	}
	c.Enter(Other)
	c.on = false
}

// Cycles is what phase p took.
func (c *Counters) Cycles(p Phase) uint64 { return c.cycles[p] }

// Total is the cycles from Start to Stop: the sum of every phase.
func (c *Counters) Total() uint64 { return c.since - c.start }

// Scaled is what phase p took in the units of total (e.g. nanoseconds
// measured by another clock over the same span), rounded down.
func (c *Counters) Scaled(p Phase, total uint64) uint64 {
	t := c.Total()
	if t == 0 {
		return 0
	}
	hi, lo := bits.Mul64(c.cycles[p], total)
	if hi >= t {
		return ^uint64(0) // cannot be: a phase is part of the total
	}
	q, _ := bits.Div64(hi, lo, t)
	return q
}

var epoch = time.Now()

// nanos is the runtime's monotonic clock, for boards without a cycle counter.
func nanos() uint64 { return uint64(time.Since(epoch)) }
