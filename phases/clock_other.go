//go:build !amd64

package phases

// Now is the runtime's nanosecond clock: this architecture's cycle counter
// is not read here.
func Now() uint64 { return nanos() }

// Unit names what Now counts.
const Unit = "ns"
