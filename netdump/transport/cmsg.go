package transport

import (
	"encoding/binary"
	"unsafe"

	"golang.org/x/sys/unix"
)

func unsafePointer(b []byte) unsafe.Pointer { return unsafe.Pointer(&b[0]) }

// putSegmentSize writes the UDP_SEGMENT control message's value (a
// uint16 in host byte order).
func putSegmentSize(oob []byte, size uint16) {
	binary.NativeEndian.PutUint16(oob[unix.CmsgLen(0):], size)
}
