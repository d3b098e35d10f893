package dumptest

import (
	"sync"
	"testing"
)

var sink []byte

// TestHeapAllocs: an allocation planted in f is counted exactly, however
// many; another goroutine allocating all the while is not.
func TestHeapAllocs(t *testing.T) {
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		for {
			select {
			case <-stop:
				return
			default:
				sink = make([]byte, 64)
			}
		}
	})
	defer wg.Wait()
	defer close(stop)
	for _, n := range []int{0, 1, 7} {
		got := HeapAllocs(func() {
			for range n {
				sink = make([]byte, 32)
			}
		})
		if got != uint64(n) {
			t.Errorf("%d allocations planted, %d counted", n, got)
		}
	}
}
