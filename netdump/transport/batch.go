package transport

import (
	"errors"
	"net"
	"sync/atomic"
	"syscall"

	"golang.org/x/net/ipv4"
	"golang.org/x/net/ipv6"
	"golang.org/x/sys/unix"
)

// BatchConn is a ClientConn that moves several datagrams per system
// call. OSNetwork's client sockets are BatchConns.
type BatchConn interface {
	ClientConn
	// ReadBatch waits for a datagram and reads up to len(ms) of those
	// queued (recvmmsg): ms[i].N is the i-th one's length, and
	// ms[i].Flags has MSG_TRUNC when it did not fit its buffer.
	ReadBatch(ms []ipv4.Message) (int, error)
	// WriteTrain sends b as consecutive datagrams of size bytes each
	// (the last may be shorter): one system call, and with UDP
	// segmentation offload one trip through the stack, yet separate
	// datagrams on the wire.
	WriteTrain(b []byte, size int) error
	// SizeReadBuffer asks for a receive buffer of bytes, beyond
	// net.core.rmem_max when the process may (SO_RCVBUFFORCE), and
	// reports the size the kernel gave (it doubles the request for its
	// bookkeeping) and whether it was forced.
	SizeReadBuffer(bytes int) (got int, forced bool, err error)
}

// maxSegments is the most datagrams one UDP_SEGMENT send may carry
// (UDP_MAX_SEGMENTS of older kernels).
const maxSegments = 64

// osClient is a connected host UDP socket.
type osClient struct {
	*net.UDPConn
	batch interface {
		ReadBatch([]ipv4.Message, int) (int, error)
		WriteBatch([]ipv4.Message, int) (int, error)
	}
	noGSO atomic.Bool // UDP_SEGMENT was refused: sendmmsg instead
	oob   []byte
	out   []ipv4.Message
}

func newOSClient(c *net.UDPConn) *osClient {
	o := &osClient{UDPConn: c, oob: segmentCmsg()}
	if a, ok := c.LocalAddr().(*net.UDPAddr); ok && a.IP.To4() == nil {
		o.batch = ipv6.NewPacketConn(c)
	} else {
		o.batch = ipv4.NewPacketConn(c)
	}
	return o
}

func (o *osClient) ReadBatch(ms []ipv4.Message) (int, error) { return o.batch.ReadBatch(ms, 0) }

func (o *osClient) WriteTrain(b []byte, size int) error {
	for len(b) > 0 {
		n := min(len(b), size*maxSegments)
		if err := o.writeSegments(b[:n], size); err != nil {
			return err
		}
		b = b[n:]
	}
	return nil
}

func (o *osClient) writeSegments(b []byte, size int) error {
	if len(b) <= size {
		_, err := o.Write(b)
		return err
	}
	if !o.noGSO.Load() {
		putSegmentSize(o.oob, uint16(size))
		_, _, err := o.WriteMsgUDP(b, o.oob, nil)
		if err == nil || !gsoRefused(err) {
			return err
		}
		// No segmentation offload here (an old kernel, a device
		// without checksum offload): one datagram per message.
		o.noGSO.Store(true)
	}
	o.out = o.out[:0]
	for len(b) > 0 {
		k := min(len(b), size)
		o.out = append(o.out, ipv4.Message{Buffers: [][]byte{b[:k]}})
		b = b[k:]
	}
	for sent := 0; sent < len(o.out); {
		n, err := o.batch.WriteBatch(o.out[sent:], 0)
		if err != nil {
			return err
		}
		sent += n
	}
	return nil
}

func gsoRefused(err error) bool {
	return errors.Is(err, syscall.EIO) || errors.Is(err, syscall.EINVAL) || errors.Is(err, syscall.ENOPROTOOPT) || errors.Is(err, syscall.EOPNOTSUPP)
}

func (o *osClient) SizeReadBuffer(bytes int) (int, bool, error) {
	rc, err := o.SyscallConn()
	if err != nil {
		return 0, false, err
	}
	forced := false
	var got int
	var serr error
	err = rc.Control(func(fd uintptr) {
		if unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, bytes) == nil {
			forced = true
		} else {
			serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_RCVBUF, bytes)
		}
		got, _ = unix.GetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_RCVBUF)
	})
	if err == nil {
		err = serr
	}
	return got, forced, err
}

var _ BatchConn = (*osClient)(nil)
