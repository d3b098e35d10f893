// Package wire encodes and decodes FreeBSD's netdump messages: the 24-byte
// message header, the 4-byte ACK, the 512-byte kernel dump header (KDH) and
// the encryption-key blob. Everything is big-endian and packed
// (netdump-protocol.md §1, §3). Encoders write into caller buffers and
// decoders return views or fixed-size values, so neither allocates: the
// client runs them after a panic.
package wire

import "encoding/binary"

// UDP ports of the protocol.
const (
	ServerPort = 20023 // HERALDs go here; the server answers from a new port
	ClientPort = 20024 // the client sends from and receives ACKs on it
)

// MsgType is mh_type.
type MsgType uint32

// Message types.
const (
	Herald   MsgType = 1 // payload: optional NUL-terminated relative path
	Finished MsgType = 2 // empty
	VMCore   MsgType = 3 // dump bytes at Offset
	KDH      MsgType = 4 // the 512-byte kernel dump header
	EKCDKey  MsgType = 5 // encryption-key blob bytes at Offset
)

func (t MsgType) String() string {
	switch t {
	case Herald:
		return "HERALD"
	case Finished:
		return "FINISHED"
	case VMCore:
		return "VMCORE"
	case KDH:
		return "KDH"
	case EKCDKey:
		return "EKCD_KEY"
	}
	return "unknown"
}

// Valid reports whether t is one of the five message types.
func (t MsgType) Valid() bool { return t >= Herald && t <= EKCDKey }

// Sizes.
const (
	HeaderSize = 24
	AckSize    = 4
	// DataSize is NETDUMP_DATASIZE: the dump block size and FreeBSD
	// netdumpd's largest accepted payload.
	DataSize = 4096
	// MaxPayload is the largest payload one UDP/IPv4 datagram can carry
	// after the IP, UDP and netdump headers; a jumbo-MTU client may send
	// up to this.
	MaxPayload = 65535 - 20 - 8 - HeaderSize
	// MaxHeraldPath is netdumpd's limit for the HERALD path, NUL included.
	MaxHeraldPath = 1024
	// Overhead is what a message adds to its payload inside an IPv4
	// packet; payload per packet = MTU - Overhead.
	Overhead = 20 + 8 + HeaderSize
)

// Header is struct netdump_msg_hdr.
//
// Aux2 is ignored by FreeBSD's netdumpd. tamadump uses it in two places: a
// VMCORE message with Len 0 and Aux2 != 0 declares that Aux2 bytes starting
// at Offset are zero and were deliberately not sent (zero-page elision;
// older servers write nothing for it, which leaves the same hole), and a
// HERALD with Aux2 = AckLists asks for ACK lists.
type Header struct {
	Type   MsgType
	Seqno  uint32
	Offset uint64
	Len    uint32
	Aux2   uint32
}

// ZeroRun reports whether h declares a run of zero bytes, and its length.
func (h Header) ZeroRun() (uint32, bool) {
	return h.Aux2, h.Type == VMCore && h.Len == 0 && h.Aux2 != 0
}

// Put writes h into b[:HeaderSize].
func (h Header) Put(b []byte) error {
	if len(b) < HeaderSize {
		return ErrShortBuffer
	}
	binary.BigEndian.PutUint32(b[0:], uint32(h.Type))
	binary.BigEndian.PutUint32(b[4:], h.Seqno)
	binary.BigEndian.PutUint64(b[8:], h.Offset)
	binary.BigEndian.PutUint32(b[16:], h.Len)
	binary.BigEndian.PutUint32(b[20:], h.Aux2)
	return nil
}

// ParseHeader decodes the header at the start of b without checking it
// against the datagram length (see ParseMessage).
func ParseHeader(b []byte) (Header, error) {
	if len(b) < HeaderSize {
		return Header{}, ErrRunt
	}
	return Header{
		Type:   MsgType(binary.BigEndian.Uint32(b[0:])),
		Seqno:  binary.BigEndian.Uint32(b[4:]),
		Offset: binary.BigEndian.Uint64(b[8:]),
		Len:    binary.BigEndian.Uint32(b[16:]),
		Aux2:   binary.BigEndian.Uint32(b[20:]),
	}, nil
}

// ParseMessage decodes one whole datagram: the header, then exactly Len
// payload bytes. The payload aliases b. The type is checked as well, and
// the length limits the protocol implies.
func ParseMessage(b []byte) (Header, []byte, error) {
	h, err := ParseHeader(b)
	if err != nil {
		return h, nil, err
	}
	if uint64(len(b)-HeaderSize) != uint64(h.Len) {
		return h, nil, ErrLength
	}
	if h.Len > MaxPayload {
		return h, nil, ErrTooLarge
	}
	if !h.Type.Valid() {
		return h, nil, ErrType
	}
	return h, b[HeaderSize:], nil
}

// AppendMessage writes header and payload into b and returns the used
// part. h.Len is set from the payload.
func AppendMessage(b []byte, h Header, payload []byte) ([]byte, error) {
	if len(payload) > MaxPayload {
		return nil, ErrTooLarge
	}
	if len(b) < HeaderSize+len(payload) {
		return nil, ErrShortBuffer
	}
	h.Len = uint32(len(payload))
	if err := h.Put(b); err != nil {
		return nil, err
	}
	copy(b[HeaderSize:], payload)
	return b[:HeaderSize+len(payload)], nil
}

// PutAck writes the ACK for seqno into b[:AckSize].
func PutAck(b []byte, seqno uint32) error {
	if len(b) < AckSize {
		return ErrShortBuffer
	}
	binary.BigEndian.PutUint32(b, seqno)
	return nil
}

// ParseAck decodes an ACK. Like FreeBSD's client it recognises an ACK by
// its length alone: exactly 4 bytes.
func ParseAck(b []byte) (uint32, error) {
	if len(b) != AckSize {
		return 0, ErrNotAck
	}
	return binary.BigEndian.Uint32(b), nil
}

// AckLists in a HERALD's Aux2 says the client takes ACK lists: one
// datagram that acknowledges several messages. FreeBSD's netdumpd ignores
// Aux2 and acknowledges each message on its own (and FreeBSD's client,
// which sends 0, takes only 4-byte ACKs); netgdb's HERALD uses another
// value.
const AckLists uint32 = 0x746d616c // "tmal"

// An ACK list is a header, the count of fresh seqnos (BE u32), and that
// many fresh seqnos followed by repeated ones: seqnos the previous list
// acknowledged, sent again so that one lost list loses no acknowledgement.
// A fresh seqno's ACK is what a 4-byte ACK would be; a repeated one only
// says the message arrived, some time ago. It is at least 8 bytes, so
// never taken for a 4-byte ACK.
const (
	// MaxAckList is the most seqnos a list holds: its datagram, 1052
	// bytes over IPv4 and 1072 over IPv6, fits any MTU netdump runs on
	// (payloads of at least 1024 bytes) and IPv6's minimum.
	MaxAckList = 256
	// MaxAckListSize is the longest ACK list.
	MaxAckListSize = 4 + 4*MaxAckList
)

// AckList is a view of an ACK list.
type AckList []byte

// ParseAckList checks b for an ACK list: at least one fresh seqno, no
// more than MaxAckList in all, whole seqnos. The list aliases b.
func ParseAckList(b []byte) (AckList, error) {
	if len(b) < 8 || len(b) > MaxAckListSize || len(b)%4 != 0 {
		return nil, ErrNotAckList
	}
	if f := binary.BigEndian.Uint32(b); f == 0 || f > uint32(len(b)/4-1) {
		return nil, ErrNotAckList
	}
	return AckList(b), nil
}

// Len is the number of seqnos in l, fresh and repeated.
func (l AckList) Len() int { return len(l)/4 - 1 }

// Fresh is the number of fresh seqnos: Seqno(i) for i < Fresh().
func (l AckList) Fresh() int { return int(binary.BigEndian.Uint32(l)) }

// Seqno is the i-th seqno.
func (l AckList) Seqno(i int) uint32 { return binary.BigEndian.Uint32(l[4+4*i:]) }

// Acks is a view of a datagram that acknowledges: a 4-byte ACK (one
// fresh seqno) or an ACK list.
type Acks []byte

// ParseAcks checks b for either.
func ParseAcks(b []byte) (Acks, error) {
	if len(b) == AckSize {
		return Acks(b), nil
	}
	if _, err := ParseAckList(b); err != nil {
		return nil, err
	}
	return Acks(b), nil
}

// Len is the number of seqnos a acknowledges.
func (a Acks) Len() int {
	if len(a) == AckSize {
		return 1
	}
	return AckList(a).Len()
}

// Fresh is the number of fresh seqnos: Seqno(i) for i < Fresh().
func (a Acks) Fresh() int {
	if len(a) == AckSize {
		return 1
	}
	return AckList(a).Fresh()
}

// Seqno is the i-th seqno.
func (a Acks) Seqno(i int) uint32 {
	if len(a) == AckSize {
		return binary.BigEndian.Uint32(a)
	}
	return AckList(a).Seqno(i)
}

// Has reports whether a acknowledges seqno.
func (a Acks) Has(seqno uint32) bool {
	for i := range a.Len() {
		if a.Seqno(i) == seqno {
			return true
		}
	}
	return false
}

// PutAckList writes the list of fresh then repeated seqnos into b and
// returns its length. fresh and repeated are 4-byte ACKs back to back;
// fresh holds at least one, and together at most MaxAckList.
func PutAckList(b, fresh, repeated []byte) (int, error) {
	n := 4 + len(fresh) + len(repeated)
	switch {
	case len(fresh) < AckSize || len(fresh)%AckSize != 0 || len(repeated)%AckSize != 0 || n > MaxAckListSize:
		return 0, ErrNotAckList
	case len(b) < n:
		return 0, ErrShortBuffer
	}
	binary.BigEndian.PutUint32(b, uint32(len(fresh)/AckSize))
	copy(b[4+copy(b[4:], fresh):], repeated)
	return n, nil
}

// HeraldPath returns the path a HERALD payload names, or "" (use the
// default) when netdumpd would ignore it: empty, longer than
// MaxHeraldPath, or not NUL-terminated. The result aliases p.
func HeraldPath(p []byte) []byte {
	if len(p) == 0 || len(p) > MaxHeraldPath || p[len(p)-1] != 0 {
		return nil
	}
	for i, c := range p {
		if c == 0 {
			return p[:i]
		}
	}
	return nil
}
