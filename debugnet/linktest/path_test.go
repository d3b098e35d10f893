package linktest

import (
	"sync"
	"testing"
	"time"
)

// TestReorderHold: with every frame reordered, a frame goes right after
// the next one going its way, and one that no other follows still
// arrives, after HoldFor (the control: it does not arrive before).
func TestReorderHold(t *testing.T) {
	var mu sync.Mutex
	var got []string
	p := NewPath(Faults{Reorder: 1, Seed: 1}, func(f []byte, d Direction) {
		mu.Lock()
		got = append(got, string(f))
		mu.Unlock()
	})
	defer p.Close()
	arrived := func() []string {
		mu.Lock()
		defer mu.Unlock()
		return append([]string(nil), got...)
	}
	p.Carry([]byte("a"), Out) // held
	p.Carry([]byte("b"), Out) // goes, then a
	if g := arrived(); len(g) != 2 || g[0] != "b" || g[1] != "a" {
		t.Fatalf("arrived %q, want b then a", g)
	}
	start := time.Now()
	p.Carry([]byte("c"), Out) // held, and nothing follows
	if g := arrived(); len(g) != 2 {
		t.Fatalf("c arrived at once: %q", g)
	}
	for len(arrived()) < 3 {
		if time.Since(start) > time.Second {
			t.Fatal("a held frame that nothing followed never arrived")
		}
		time.Sleep(100 * time.Microsecond)
	}
	if waited := time.Since(start); waited < HoldFor {
		t.Errorf("c arrived after %v, before HoldFor", waited)
	}
}
