package transport

import (
	"errors"
	"net"
	"os"
	"sync/atomic"
	"syscall"
	"unsafe"

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
	// ms[i].Flags has MSG_TRUNC when it did not fit its buffer. The
	// socket is connected, so ms[i].Addr is left alone. Control
	// messages go to ms[i].OOB (ms[i].NN bytes): with GRO, GROSize
	// finds there whether ms[i] holds several datagrams.
	ReadBatch(ms []ipv4.Message) (int, error)
	// GRO asks the kernel to coalesce consecutive datagrams of one size
	// from the peer into one read (UDP_GRO), as it does for a GSO train
	// sent on loopback or a NIC's GRO; false means it does not.
	GRO() bool
	// WriteTrain sends b as consecutive datagrams of size bytes each
	// (the last may be shorter): one system call, and with UDP
	// segmentation offload one trip through the stack, yet separate
	// datagrams on the wire.
	WriteTrain(b []byte, size int) error
}

// KernelBuffer is a ClientConn whose receive buffer the kernel sizes.
// OSNetwork's client sockets are KernelBuffers.
type KernelBuffer interface {
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
	in    recvmmsg
}

func newOSClient(c *net.UDPConn) *osClient {
	o := &osClient{UDPConn: c, oob: segmentCmsg()}
	if a, ok := c.LocalAddr().(*net.UDPAddr); ok && a.IP.To4() == nil {
		o.batch = ipv6.NewPacketConn(c)
	} else {
		o.batch = ipv4.NewPacketConn(c)
	}
	o.in.call = o.in.recv
	o.in.rc, o.in.rcErr = c.SyscallConn()
	return o
}

// recvmmsg is ReadBatch's system call, made without allocating: x/net's
// ReadBatch parses a source address into a new net.UDPAddr for every
// datagram, which a connected socket does not need.
type recvmmsg struct {
	hs    []mmsghdr
	vs    []unix.Iovec
	rc    syscall.RawConn
	rcErr error
	call  func(fd uintptr) bool // recv, bound once
	n     int
	err   syscall.Errno
}

// mmsghdr is struct mmsghdr.
type mmsghdr struct {
	hdr unix.Msghdr
	len uint32
}

func (r *recvmmsg) recv(fd uintptr) bool {
	n, _, e := unix.Syscall6(unix.SYS_RECVMMSG, fd, uintptr(unsafe.Pointer(&r.hs[0])), uintptr(len(r.hs)), unix.MSG_DONTWAIT, 0, 0)
	if e == unix.EAGAIN {
		return false // wait for the poller
	}
	r.n, r.err = int(n), e
	return true
}

func (o *osClient) ReadBatch(ms []ipv4.Message) (int, error) {
	r := &o.in
	if len(ms) == 0 {
		return 0, nil
	}
	nb := 0
	for i := range ms {
		nb += len(ms[i].Buffers)
	}
	if cap(r.hs) < len(ms) {
		r.hs = make([]mmsghdr, len(ms))
	}
	if cap(r.vs) < nb {
		r.vs = make([]unix.Iovec, nb)
	}
	r.hs, r.vs = r.hs[:len(ms)], r.vs[:nb]
	vs := r.vs
	for i := range ms {
		h := &r.hs[i]
		*h = mmsghdr{}
		if oob := ms[i].OOB; len(oob) > 0 {
			h.hdr.Control = &oob[0]
			h.hdr.SetControllen(len(oob))
		}
		k := len(ms[i].Buffers)
		for j, b := range ms[i].Buffers {
			vs[j] = unix.Iovec{}
			if len(b) > 0 {
				vs[j].Base = &b[0]
				vs[j].SetLen(len(b))
			}
		}
		if k > 0 {
			h.hdr.Iov = &vs[0]
			h.hdr.SetIovlen(k)
		}
		vs = vs[k:]
	}
	if r.rcErr != nil {
		return 0, r.rcErr
	}
	r.n, r.err = 0, 0
	err := r.rc.Read(r.call)
	if err == nil && r.err != 0 {
		err = os.NewSyscallError("recvmmsg", r.err)
	}
	if err != nil {
		r.n = 0
	}
	for i := range r.n {
		ms[i].N = int(r.hs[i].len)
		ms[i].NN = int(r.hs[i].hdr.Controllen)
		ms[i].Flags = int(r.hs[i].hdr.Flags)
	}
	// The caller's buffers must not stay reachable from here (a session
	// that lingers keeps its socket, not its read buffers).
	clear(r.hs)
	clear(r.vs)
	return r.n, err
}

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

func (o *osClient) GRO() bool { return o.in.rcErr == nil && EnableGRO(o.in.rc) }

func (o *osClient) SizeReadBuffer(bytes int) (int, bool, error) {
	return SizeReadBuffer(o.UDPConn, bytes)
}

// SizeReadBuffer is KernelBuffer's SizeReadBuffer for any socket.
func SizeReadBuffer(c syscall.Conn, bytes int) (got int, forced bool, err error) {
	rc, err := c.SyscallConn()
	if err != nil {
		return 0, false, err
	}
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

var (
	_ BatchConn    = (*osClient)(nil)
	_ KernelBuffer = (*osClient)(nil)
)
