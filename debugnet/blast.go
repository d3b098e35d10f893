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

// Blast sends total payload bytes of UDP to the server's port in
// datagrams of MaxPayload bytes (the last one shorter), as fast as the NIC
// takes them: a datagram the NIC refuses goes again at once. Each payload
// starts with its datagram's number (8 bytes, big-endian), so a sink can
// count what arrived; the rest is a non-zero pattern. It is the limit a
// dump's goodput is measured against: the same headers, checksum, driver
// and NIC, with nothing to read and no acknowledgements to wait for. Call
// Connect first; nothing is received meanwhile. Blast does not allocate.
func (c *Conn) Blast(port uint16, total int64) (BlastStats, error) {
	var st BlastStats
	p := c.Payload()
	for i := range p {
		p[i] = byte('A' + i%26)
	}
	start := c.Now()
	for total > 0 {
		n := int(min(int64(len(p)), total))
		if n >= 8 {
			binary.BigEndian.PutUint64(p, st.Datagrams)
		}
		for tries := 0; ; tries++ {
			err := c.Send(port, n)
			if err == nil {
				break
			}
			if err == ErrNotResolved || err == ErrTooBig || tries == blastTries {
				return st, err
			}
			st.Refused++
		}
		st.Datagrams++
		st.Bytes += uint64(n)
		total -= int64(n)
	}
	st.Elapsed = c.Now() - start
	return st, nil
}
