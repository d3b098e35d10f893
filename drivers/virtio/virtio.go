// Package virtio is a polled virtio-net driver over three transports:
// virtio-mmio (version 1 "legacy" and version 2), modern virtio-pci
// (register blocks found through vendor capabilities) and legacy
// virtio-pci (I/O BAR0, as on transitional devices).
//
// The driver uses split virtqueues (RX queue 0, TX queue 1, no control
// queue) in a DMA region given at construction, one mbufpool buffer per
// descriptor slot, no interrupts (avail.flags = NO_INTERRUPT) and no heap
// allocation once constructed, so debugnet can run it after a panic.
// Reset puts a device in any state back to work the same way.
//
// Features are kept to what a polled dumper needs: MAC, STATUS (link
// state, if offered), VERSION_1 (required on the modern transports) and,
// on legacy transports, ANY_LAYOUT (header and frame in one descriptor;
// without it the header gets its own descriptor). No MRG_RXBUF, no
// EVENT_IDX, no CTRL_VQ, no offloads.
//
// NewMMIO, NewPCI and NewLegacyPCI take the transport's registers, a
// rings region of RingBytes(queue size) bytes starting 4096-byte aligned,
// and a pool with one free buffer of at least 12+1514 bytes per slot: a
// slot per queue entry in each of the two queues (2×256 on legacy
// virtio-pci, whose size is fixed), half that for a legacy device without
// ANY_LAYOUT. They negotiate features, read the MAC address and run Reset.
//
// PCI discovery, BAR assignment, decoding, bus mastering and INTx disable
// are the caller's (see package pci); FindPCIRegs and LegacyIOBase turn a
// configured function into what NewPCI and NewLegacyPCI take.
//
// The ring layout is little endian and the device's index fields are read
// and written with sync/atomic: the host (QEMU or hardware) shares them.
package virtio

import (
	"errors"
)

// Device status bits (virtio 1.x §2.1).
const (
	statusAck          = 1
	statusDriver       = 2
	statusDriverOK     = 4
	statusFeaturesOK   = 8
	statusNeedsReset   = 64
	statusFailed       = 128
	resetPolls         = 1000 // reads of the status until a reset shows
	maxQueueSize       = 32768
	defaultQueueSize   = 256
	netDeviceID        = 1 // virtio device type: network card
	queueRX, queueTX   = 0, 1
	legacyHdrLen       = 10 // virtio_net_hdr without num_buffers
	modernHdrLen       = 12 // with num_buffers: always there with VERSION_1
	hdrNeedsCsum       = 1  // virtio_net_hdr.flags: complete the checksum
	mtu                = 1500
	maxFrame           = mtu + 14 // no FCS, no VLAN tag
	minFrame           = 60       // short frames are zero-padded: QEMU does not pad
	configStatusLinkUp = 1
)

// Feature bits.
const (
	featCSUM      = 1 << 0 // the device completes checksums (NEEDS_CSUM)
	featMAC       = 1 << 5
	featStatus    = 1 << 16
	featAnyLayout = 1 << 27
	featVersion1  = 1 << 32
)

// Errors. They are preallocated: returning them does not allocate.
var (
	ErrNoDevice     = errors.New("virtio: no virtio-net device at this address")
	ErrResetTimeout = errors.New("virtio: device status did not read 0 after reset")
	ErrFeatures     = errors.New("virtio: device does not offer the features the driver needs (MAC; VERSION_1 on modern transports)")
	ErrFeaturesOK   = errors.New("virtio: device refused the features (FEATURES_OK not set)")
	ErrQueue        = errors.New("virtio: RX or TX queue missing or smaller than set up")
	ErrDeviceFailed = errors.New("virtio: device reports NEEDS_RESET or FAILED after set-up")
	ErrTXFull       = errors.New("virtio: transmit ring full")
	ErrFrameSize    = errors.New("virtio: frame empty or larger than 1514 bytes")
)

// transport is what differs between virtio-mmio, modern and legacy
// virtio-pci: the device status, feature and queue registers, notify and
// device configuration space. None of its methods may allocate.
type transport interface {
	status() uint8
	setStatus(s uint8)
	// deviceFeatures are the offered features (legacy: 32 bits).
	deviceFeatures() uint64
	setDriverFeatures(f uint64)
	// modern transports require VERSION_1 and the FEATURES_OK step.
	modern() bool
	// queueMax is the largest size queue q may have; 0 if it does not
	// exist. Valid after a reset.
	queueMax(q uint16) uint16
	// sizeFixed: the queue size is queueMax and cannot be changed.
	sizeFixed() bool
	// setupQueue programs and enables queue q. The rings are laid out
	// in the legacy way (used ring at the next 4096-byte boundary after
	// the avail ring) so that every transport can take them.
	setupQueue(q, size uint16, desc, avail, used uint64)
	notify(q uint16)
	config8(off uint32) uint8
	// configGeneration changes when the device config changes (0 on
	// legacy transports, which have none).
	configGeneration() uint32
}
