package debugnet

import "encoding/binary"

// blastTries bounds the refusals of one datagram: each already waited for
// the ring as long as the driver does, so this many mean a stuck NIC.
const blastTries = 100

// BlastStats is what Blast sent.
type BlastStats struct {
	Datagrams uint64
	Bytes     uint64 // UDP payload bytes
	Refused   uint64 // Transmits the NIC refused (ring full), sent again
	Elapsed   int64  // ns, by the endpoint's clock
}

// blastHead is the part of a blast's payload built in the frame, as
// long as a netdump message's header.
const blastHead = 24

// Blast sends total payload bytes of UDP to the server's port in
// datagrams of MaxPayload bytes (the last one shorter), as fast as the NIC
// takes them: a datagram the NIC refuses goes again at once. Each payload
// starts with a 24-byte head built in the frame, as a dump message's
// header is: its datagram's number (8 bytes, big-endian), so a sink can
// count what arrived, then a pattern. The rest is src, in turn (the
// pattern if src is empty), sent as a dump sends RAM: read by the NIC in
// place at bus address addr (src's first byte) where it gathers, else
// copied. It is the limit a dump's goodput is measured against: the same
// headers, checksum, driver and NIC, with nothing to read and no
// acknowledgements to wait for. Call Connect first; nothing is received
// meanwhile. Blast does not allocate.
func (c *Conn) Blast(port uint16, total int64, src []byte, addr uint64) (BlastStats, error) {
	var st BlastStats
	p := c.Payload()
	for i := range p {
		p[i] = byte('A' + i%26)
	}
	off := 0 // where in src the next tail starts
	start := c.Now()
	for total > 0 {
		n := int(min(int64(len(p)), total))
		if n >= 8 {
			binary.BigEndian.PutUint64(p, st.Datagrams)
		}
		var tail []byte
		if head := min(n, blastHead); len(src) > 0 && n > head {
			if len(src)-off < n-head {
				off = 0 // start src again rather than send a short tail
			}
			tail = src[off:min(len(src), off+n-head)]
			n = head
		}
		for tries := 0; ; tries++ {
			var err error
			switch {
			case tail == nil:
				err = c.Send(port, n)
			case c.g != nil:
				err = c.SendFrom(port, n, tail, addr+uint64(off))
			default:
				err = c.SendCopy(port, n, tail)
			}
			if err == nil {
				break
			}
			if err == ErrNotResolved || err == ErrTooBig || tries == blastTries {
				return st, err
			}
			st.Refused++
		}
		n += len(tail)
		off += len(tail)
		st.Datagrams++
		st.Bytes += uint64(n)
		total -= int64(n)
	}
	c.Flush()
	st.Elapsed = c.Now() - start
	return st, nil
}
