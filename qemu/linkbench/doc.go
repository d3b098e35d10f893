// Package linkbench holds the end-to-end dump benchmarks over links the
// test builds itself: the stock-Go image under QEMU dumping to netdumpd
// through the user-space network behind `make qemu`, clean and through a
// lossy relay (drops, duplicates and reordering both ways, ARP spared), and
// through a tap device in a network namespace to netdumpd on the host's
// kernel network. Only its tests have code.
package linkbench
