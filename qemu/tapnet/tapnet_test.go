package tapnet

import (
	"fmt"
	"os"
	"strconv"
	"testing"
	"time"
)

// A child of TestPeakRSS: touches TAPNET_TEST_ALLOC_MIB MiB, says so and
// waits to be killed.
func init() {
	mib, err := strconv.Atoi(os.Getenv("TAPNET_TEST_ALLOC_MIB"))
	if err != nil {
		return
	}
	b := make([]byte, mib<<20)
	for i := range b {
		b[i] = byte(i)
	}
	fmt.Println("touched", len(b))
	time.Sleep(time.Minute)
	os.Exit(int(b[len(b)/2]) * 0)
}

func childRSS(t *testing.T, mib int) uint64 {
	t.Setenv("TAPNET_TEST_ALLOC_MIB", strconv.Itoa(mib))
	p, err := start([]string{os.Args[0], "-test.run=^$"}, true)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	if err := p.Wait("touched", 30*time.Second); err != nil {
		t.Fatal(err)
	}
	rss, err := p.PeakRSS()
	if err != nil {
		t.Fatal(err)
	}
	return rss
}

// TestPeakRSS: the peak resident set the scale benchmark reports of
// netdumpd sees memory a process touches: 128 MiB more shows as nearly
// that much more (a few pages may already be resident) than the same
// process touching 1 MiB.
func TestPeakRSS(t *testing.T) {
	small, big := childRSS(t, 1), childRSS(t, 128)
	t.Logf("VmHWM: %d MiB touching 1 MiB, %d MiB touching 128 MiB", small>>20, big>>20)
	if big < small+120<<20 {
		t.Errorf("VmHWM %d MiB touching 128 MiB, %d MiB touching 1 MiB: the reading misses the memory", big>>20, small>>20)
	}
}
