package transport

import (
	"encoding/binary"
	"unsafe"

	"golang.org/x/sys/unix"
)

// segmentCmsg is a UDP_SEGMENT control message (its value set by
// putSegmentSize): the kernel cuts the datagram it comes with into
// datagrams of that many bytes.
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
