package client

import "bytes"

// zeroPage stays in the L1 cache while whole pages are compared with it
// by the runtime's vectorised memequal.
var zeroPage [4096]byte

// allZero reports whether b is all zero bytes.
func allZero(b []byte) bool {
	for len(b) > 0 {
		k := min(len(b), len(zeroPage))
		if !bytes.Equal(b[:k], zeroPage[:k]) {
			return false
		}
		b = b[k:]
	}
	return true
}
