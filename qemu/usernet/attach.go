package usernet

import (
	"bufio"
	"encoding/binary"
	"io"
	"net"
	"sync"
	"sync/atomic"

	"gvisor.dev/gvisor/pkg/tcpip/header"

	"github.com/tamadump/tamadump/debugnet/linktest"
)

// maxFrame bounds a received frame: QEMU NICs can emit up to 64 KiB plus
// headers.
const maxFrame = 70 << 10

// AttachDgram joins the NIC to a QEMU `-netdev dgram` backend: one raw
// frame per datagram each way. conn is bound where QEMU's remote points;
// frames are sent to peer (QEMU's local). It returns at once; frames are
// read until conn is closed.
func (s *Stack) AttachDgram(conn net.PacketConn, peer net.Addr) {
	s.Attach(func(frame []byte) { writeDgram(conn, peer, frame) })
	go readDgram(conn, s.Inject)
}

func writeDgram(conn net.PacketConn, peer net.Addr, frame []byte) {
	// An empty datagram would make QEMU stop reading; the stack never
	// produces one, but the rule is absolute.
	if len(frame) > 0 {
		conn.WriteTo(frame, peer)
	}
}

func readDgram(conn net.PacketConn, in func([]byte)) {
	buf := make([]byte, maxFrame)
	for {
		n, _, err := conn.ReadFrom(buf)
		if err != nil {
			return
		}
		in(buf[:n])
	}
}

// AttachStream joins the NIC to a QEMU `-netdev stream` connection: each
// frame is preceded by its length as a 4-byte big-endian integer. The
// frames the stack has ready go in one write, and QEMU's are read in large
// chunks, so a burst costs a few system calls and wakeups rather than one
// per frame. With faults f the frames go through a linktest.Path both
// ways, QEMU's as Out and the host's as In, which it returns for the
// caller to close after conn; with none (any Seed) it returns nil. It returns at
// once; frames are read until conn fails or is closed.
func (s *Stack) AttachStream(conn net.Conn, f linktest.Faults) *linktest.Path {
	w := &streamWriter{conn: conn}
	if f.None() {
		s.AttachBatched(w.frame, w.flush)
		go readStream(conn, s.Inject)
		return nil
	}
	p := linktest.NewPath(f, func(frame []byte, d linktest.Direction) {
		if d == linktest.Out {
			s.Inject(frame)
			return
		}
		w.frame(frame)
		if !w.batching.Load() {
			w.flush() // a delayed frame, carried by the path's own goroutine
		}
	})
	s.AttachBatched(func(frame []byte) {
		w.batching.Store(true)
		p.Carry(frame, linktest.In)
	}, func() {
		// Cleared before the write: a frame the path emits meanwhile
		// either goes with it or sees the flag clear and writes itself.
		w.batching.Store(false)
		w.flush()
	})
	go readStream(conn, func(frame []byte) { p.Carry(frame, linktest.Out) })
	return p
}

// streamWriter collects length-prefixed frames and writes them at once.
type streamWriter struct {
	conn     net.Conn
	mu       sync.Mutex
	buf      []byte
	batching atomic.Bool // the stack's output is mid-batch and will flush
}

// streamBatch bounds one write.
const streamBatch = 256 << 10

func (w *streamWriter) frame(f []byte) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.buf = binary.BigEndian.AppendUint32(w.buf, uint32(len(f)))
	w.buf = append(w.buf, f...)
	if len(w.buf) >= streamBatch {
		w.writeLocked()
	}
}

func (w *streamWriter) flush() {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.writeLocked()
}

func (w *streamWriter) writeLocked() {
	if len(w.buf) > 0 {
		w.conn.Write(w.buf) // a failed connection ends the reader too
		w.buf = w.buf[:0]
	}
}

func readStream(conn net.Conn, in func([]byte)) {
	r := bufio.NewReaderSize(conn, 256<<10)
	var hdr [4]byte
	buf := make([]byte, maxFrame)
	for {
		if _, err := io.ReadFull(r, hdr[:]); err != nil {
			return
		}
		n := binary.BigEndian.Uint32(hdr[:])
		if n > maxFrame {
			return // out of sync: nothing sensible follows
		}
		if _, err := io.ReadFull(r, buf[:n]); err != nil {
			return
		}
		if n >= header.EthernetMinimumSize {
			in(buf[:n])
		}
	}
}
