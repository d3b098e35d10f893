package transport

import (
	"encoding/binary"
	"unsafe"

	"golang.org/x/sys/unix"
)

// SegmentOOB is a UDP_SEGMENT control message for sendmsg: the kernel
// cuts the datagram it comes with into datagrams of size bytes (the last
// may be shorter), each its own on the wire.
func SegmentOOB(size int) []byte {
	b := segmentCmsg()
	putSegmentSize(b, uint16(size))
	return b
}

// segmentCmsg is a UDP_SEGMENT control message, its value set by
// putSegmentSize.
func segmentCmsg() []byte {
	b := make([]byte, unix.CmsgSpace(2))
	h := (*unix.Cmsghdr)(unsafe.Pointer(&b[0]))
	h.Level, h.Type = unix.SOL_UDP, unix.UDP_SEGMENT
	h.SetLen(unix.CmsgLen(2))
	return b
}

// putSegmentSize sets the segment size (a uint16 in host byte order).
func putSegmentSize(oob []byte, size uint16) {
	binary.NativeEndian.PutUint16(oob[unix.CmsgLen(0):], size)
}
