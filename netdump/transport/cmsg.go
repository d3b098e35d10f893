package transport

import (
	"encoding/binary"
	"syscall"
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

// GROOOB is room for the UDP_GRO control message of a read.
func GROOOB() []byte { return make([]byte, unix.CmsgSpace(4)) }

// GROSize is the size of each datagram coalesced into a read whose
// control messages are oob (the last may be shorter), or 0 when it holds
// one datagram.
func GROSize(oob []byte) int {
	for len(oob) >= unix.CmsgLen(0) {
		h := (*unix.Cmsghdr)(unsafe.Pointer(&oob[0]))
		n := int(h.Len)
		if n < unix.CmsgLen(0) || n > len(oob) {
			return 0
		}
		if h.Level == unix.SOL_UDP && h.Type == unix.UDP_GRO && n >= unix.CmsgLen(4) {
			return int(binary.NativeEndian.Uint32(oob[unix.CmsgLen(0):]))
		}
		oob = oob[min(len(oob), unix.CmsgSpace(n-unix.CmsgLen(0))):]
	}
	return 0
}

// EnableGRO turns UDP_GRO on for the socket rc controls; false means the
// kernel has none.
func EnableGRO(rc syscall.RawConn) bool {
	var err error
	if cerr := rc.Control(func(fd uintptr) { err = unix.SetsockoptInt(int(fd), unix.SOL_UDP, unix.UDP_GRO, 1) }); cerr != nil {
		return false
	}
	return err == nil
}
