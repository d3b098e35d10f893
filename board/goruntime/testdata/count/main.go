// Command count is the host test of board/goruntime: it makes a known
// number of heap allocations of each kind and prints what Mallocs counted,
// next to what the runtime's own counter (/gc/heap/allocs:objects) saw
// without a flush.
package main

import (
	"fmt"
	"os"
	"runtime/debug"
	"runtime/metrics"

	"github.com/tamadump/tamadump/board/goruntime"
)

var (
	small [5]*[300]byte
	tiny  [3]*[4]byte
	large []byte
)

func main() {
	debug.SetGCPercent(-1)
	sample := []metrics.Sample{{Name: "/gc/heap/allocs:objects"}}
	metrics.Read(sample) // its first call allocates
	seen := sample[0].Value.Uint64()
	before, err := goruntime.Mallocs()
	if err != nil {
		fmt.Println("no count:", err)
		os.Exit(3)
	}
	for i := range small {
		small[i] = new([300]byte)
	}
	after, _ := goruntime.Mallocs()
	metrics.Read(sample)
	fmt.Printf("small: counted %d, runtime/metrics %d\n", after-before, sample[0].Value.Uint64()-seen)

	before, _ = goruntime.Mallocs()
	for i := range tiny {
		tiny[i] = new([4]byte)
	}
	large = make([]byte, 40<<10)
	after, _ = goruntime.Mallocs()
	fmt.Printf("tiny and large: counted %d\n", after-before)
}
