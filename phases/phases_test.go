package phases

import (
	"testing"
	"time"
)

func spin(d time.Duration) {
	for t := time.Now(); time.Since(t) < d; {
	}
}

func TestNestedPhasesSumToTotal(t *testing.T) {
	var c Counters
	began := time.Now()
	c.Start()
	prev := c.Enter(Wait)
	spin(2 * time.Millisecond)
	inner := c.Enter(Copy) // a retransmission while waiting
	spin(2 * time.Millisecond)
	c.Enter(inner)
	spin(time.Millisecond)
	c.Enter(prev)
	c.Stop()
	elapsed := uint64(time.Since(began))
	var sum uint64
	for p := range N {
		sum += c.Cycles(p)
	}
	if sum != c.Total() {
		t.Fatalf("phases sum to %d, total %d", sum, c.Total())
	}
	if c.Cycles(Wait) == 0 || c.Cycles(Copy) == 0 {
		t.Fatalf("wait %d, copy %d: a phase that ran counted nothing", c.Cycles(Wait), c.Cycles(Copy))
	}
	if c.Cycles(ZeroScan) != 0 || c.Cycles(Driver) != 0 {
		t.Fatalf("phases that never ran counted %d, %d", c.Cycles(ZeroScan), c.Cycles(Driver))
	}
	// Wait ran at least 3 ms and Copy at least 2 ms of wall time; a
	// preemption can only add to a phase, so only lower bounds are firm.
	w, cp := time.Duration(c.Scaled(Wait, elapsed)), time.Duration(c.Scaled(Copy, elapsed))
	if w < 2900*time.Microsecond || cp < 1900*time.Microsecond || w+cp > time.Duration(elapsed) {
		t.Fatalf("in %v: wait %v, copy %v", time.Duration(elapsed), w, cp)
	}
}

func TestStoppedAndNilCountNothing(t *testing.T) {
	var c Counters
	c.Enter(Copy) // before Start
	if c.Total() != 0 || c.Cycles(Other) != 0 {
		t.Fatal("counted before Start")
	}
	var n *Counters
	n.Start()
	if n.Enter(Driver) != Driver {
		t.Fatal("nil Counters changed the phase")
	}
	n.Stop()
}

func TestNoAllocs(t *testing.T) {
	var c Counters
	if a := testing.AllocsPerRun(100, func() {
		c.Start()
		c.Enter(c.Enter(Checksum))
		c.Stop()
		_ = c.Scaled(Checksum, 1e9)
	}); a != 0 {
		t.Fatalf("%v allocations", a)
	}
}
