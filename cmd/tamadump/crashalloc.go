//go:build crashalloc

package main

// The negative control of the allocation count after the crash: an image
// built with the tag crashalloc allocates one small and one large object
// there, and must report exactly 2.
var (
	smallAfterCrash *[48]byte
	largeAfterCrash []byte
)

func afterCrash() {
	smallAfterCrash = new([48]byte)        // a small object: an mcache span slot
	largeAfterCrash = make([]byte, 40<<10) // a large one: a span of its own
}
