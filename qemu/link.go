package qemu

import (
	"errors"
	"fmt"
	"net"
	"path/filepath"
	"time"
)

// Link is the host end of a `-netdev dgram` backend: one raw Ethernet
// frame (no FCS) per Unix datagram in each direction. Send and Recv may be
// used from different goroutines.
type Link struct {
	conn     *net.UnixConn
	hostPath string        // where the test's socket is bound (QEMU's remote)
	qemuAddr *net.UnixAddr // where QEMU's socket is bound (QEMU's local)
	timeout  time.Duration
}

// MaxFrame is the largest datagram Recv accepts; QEMU's e1000 can emit
// frames up to 64 KiB plus headers.
const MaxFrame = 70 << 10

// ErrEmptyFrame is returned by Send for a zero-length frame: QEMU's dgram
// backend takes an empty datagram for end-of-connection and stops reading.
var ErrEmptyFrame = errors.New("qemu: refusing to send an empty frame")

func newLink(dir, id string, timeout time.Duration) (*Link, error) {
	l := &Link{
		hostPath: filepath.Join(dir, id+".h"),
		qemuAddr: &net.UnixAddr{Name: filepath.Join(dir, id+".q"), Net: "unixgram"},
		timeout:  timeout,
	}
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: l.hostPath, Net: "unixgram"})
	if err != nil {
		return nil, fmt.Errorf("netdev %s: %w", id, err)
	}
	conn.SetReadBuffer(4 << 20) // capped by net.core.rmem_max; best effort
	l.conn = conn
	return l, nil
}

// Send injects one frame into the guest NIC. It blocks while QEMU is not
// reading (its NIC has no free receive buffers), up to the VM's timeout.
func (l *Link) Send(frame []byte) error {
	if len(frame) == 0 {
		return ErrEmptyFrame
	}
	l.conn.SetWriteDeadline(time.Now().Add(l.timeout))
	_, err := l.conn.WriteToUnix(frame, l.qemuAddr)
	return err
}

// Recv returns the next frame the guest NIC sent, or an error wrapping
// os.ErrDeadlineExceeded if none arrives within timeout.
func (l *Link) Recv(timeout time.Duration) ([]byte, error) {
	buf := make([]byte, MaxFrame)
	n, err := l.RecvInto(buf, timeout)
	if err != nil {
		return nil, err
	}
	return append([]byte(nil), buf[:n]...), nil
}

// RecvInto is Recv into the caller's buffer (at least MaxFrame bytes to
// never truncate); it returns the frame length.
func (l *Link) RecvInto(buf []byte, timeout time.Duration) (int, error) {
	l.conn.SetReadDeadline(time.Now().Add(timeout))
	n, _, err := l.conn.ReadFromUnix(buf)
	return n, err
}

// Drain discards frames until none arrives for quiet, and returns how many
// it discarded.
func (l *Link) Drain(quiet time.Duration) int {
	buf := make([]byte, MaxFrame)
	n := 0
	for {
		if _, err := l.RecvInto(buf, quiet); err != nil {
			return n
		}
		n++
	}
}
