package usernet

import (
	"bufio"
	"encoding/binary"
	"io"
	"net"

	"gvisor.dev/gvisor/pkg/tcpip/header"
)

// maxFrame bounds a received frame: QEMU NICs can emit up to 64 KiB plus
// headers.
const maxFrame = 70 << 10

// AttachDgram joins the NIC to a QEMU `-netdev dgram` backend: one raw
// frame per datagram each way. conn is bound where QEMU's remote points;
// frames are sent to peer (QEMU's local). It returns at once; frames are
// read until conn is closed.
func (s *Stack) AttachDgram(conn net.PacketConn, peer net.Addr) {
	s.Attach(func(frame []byte) {
		// An empty datagram would make QEMU stop reading; the stack
		// never produces one, but the rule is absolute.
		if len(frame) > 0 {
			conn.WriteTo(frame, peer)
		}
	})
	go func() {
		buf := make([]byte, maxFrame)
		for {
			n, _, err := conn.ReadFrom(buf)
			if err != nil {
				return
			}
			s.Inject(buf[:n])
		}
	}()
}

// AttachStream joins the NIC to a QEMU `-netdev stream` connection: each
// frame is preceded by its length as a 4-byte big-endian integer. It
// returns at once; frames are read until conn fails or is closed.
func (s *Stack) AttachStream(conn net.Conn) {
	var out []byte
	s.Attach(func(frame []byte) {
		// One Write per frame, so a frame is never interleaved or split
		// by a short write of the prefix.
		out = binary.BigEndian.AppendUint32(out[:0], uint32(len(frame)))
		out = append(out, frame...)
		conn.Write(out)
	})
	go func() {
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
				s.Inject(buf[:n])
			}
		}
	}()
}
