//go:build tamago && amd64

// Package tamago is the tamadump board for TamaGo (GOOS=tamago GOARCH=amd64)
// on a QEMU "microvm" machine, under TCG or KVM.
//
// Importing the package initialises the hardware (through the runtime/goos
// hooks Hwinit1, Nanotime, Printk and Exit) the way tamago's own
// board/qemu/microvm does, with these differences:
//
//   - The TSC is calibrated against the i8254 PIT channel 0 (counter latch
//     reads on ports 0x40/0x43, 1.193182 MHz) for 25 ms at boot; if the PIT
//     does not count (pit=off) the RTC update cycle is used instead (1-2 s).
//     tamago's microvm relies on KVM pvclock or an invariant TSC, which TCG
//     does not offer.
//   - Memory is small and placed low so that the image runs in -m 64M: by
//     default Go owns RAM [0x00400000, 0x03800000) (52 MiB: text, data,
//     bss, heap, stacks; about 34 MiB of it is bss, 32 MiB of which is the
//     standard library's crypto/internal/fips140/drbg scratch buffer that
//     tamago's RNG pulls in, untouched unless used) and a 2 MiB DMA region
//     follows at 0x03800000, outside the Go heap. tamago's global dma
//     package is not initialised.
//   - One CPU only (no InitSMP): after a crash nothing else may run.
//   - Unrecovered panics, fatal runtime errors (goos.Exit with a non-zero
//     code) and CPU exceptions run the function given to OnCrash on a
//     preallocated 256 KiB stack (see OnCrash).
//
// Build (the image's main package imports this one):
//
//	GOOS=tamago GOOSPKG=github.com/usbarmory/tamago GOARCH=amd64 $TAMAGO build \
//	  -tags linkramstart -trimpath -ldflags "-T 0x00410000 -R 0x1000" -o image .
//
// The linkramstart tag is required: this package provides runtime/goos.RamStart
// in place of tamago's amd64 package. The text address (-T) must be
// RamStart+0x10000. RamStart, RamSize and the DMA size are assembler
// constants that can be overridden at build time, for example
//
//	-asmflags=github.com/tamadump/tamadump/board/tamago=-D=RAM_SIZE=0x4000000
//
// (several: -asmflags='github.com/tamadump/tamadump/board/tamago=-D RAM_SIZE=0x4000000 -D DMA_SIZE=0x400000').
// The guest needs at least RamStart+RamSize+DMA size of memory (see
// MinRAMMiB and QEMUArgs); RamSize must leave room for the image (about
// 36 MiB with its bss) plus the heap.
package tamago
