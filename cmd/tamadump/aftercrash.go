//go:build !crashalloc

package main

// afterCrash runs right after the crash was recorded; only the negative
// control of the allocation count (build tag crashalloc) does anything
// there.
func afterCrash() {}
