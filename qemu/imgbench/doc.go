// Package imgbench measures the image's own network path end to end under
// QEMU: the shell's blast command (raw UDP through the dump's driver and
// NIC into a counting sink on the user-space network) against a dump's
// goodput of non-zero data on the same board and NIC, the dump's time per
// phase as the guest counts it, and dumps of RAM filled with random data
// at several sizes (time per MiB, the in-process server's heap). Only its
// tests have code.
package imgbench
