package client

import (
	"regexp"
	"testing"

	"github.com/tamadump/tamadump/debugnet/linktest"
	"github.com/tamadump/tamadump/phases"
)

// A dump with data and zero pages spends time in every phase, the phases
// add up to the dump's cycles, and the console line says so.
func TestPhases(t *testing.T) {
	b := newTestbed(t, 1500, linktest.Faults{})
	c := dumpOnce(t, b, b.config(), 4<<20, 0.5)
	ph := c.Phases()
	var sum uint64
	for p := range phases.N {
		sum += ph.Cycles(p)
		if ph.Cycles(p) == 0 {
			t.Errorf("phase %s counted nothing", p)
		}
	}
	if sum != ph.Total() || sum == 0 {
		t.Errorf("phases sum to %d of %d", sum, ph.Total())
	}
	line := regexp.MustCompile(`netdump phases \(us\): zero-scan \d+ copy \d+ checksum \d+ driver \d+ ack-wait \d+ other \d+ of \d+ \(\d+ `)
	if out := b.console.String(); !line.MatchString(out) {
		t.Errorf("no phases line:\n%s", out)
	}
}
