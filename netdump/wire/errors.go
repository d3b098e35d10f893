package wire

// Error is a decoding or encoding failure. The values below are the only
// ones; compare with == or errors.Is.
type Error struct{ msg string }

func (e *Error) Error() string { return "netdump: " + e.msg }

// Errors returned by this package. They are preallocated so that
// returning one does not allocate.
var (
	ErrRunt        = &Error{"message shorter than the 24-byte header"}
	ErrLength      = &Error{"payload length does not match the header"}
	ErrTooLarge    = &Error{"payload larger than a UDP datagram can carry"}
	ErrType        = &Error{"unknown message type"}
	ErrNotAck      = &Error{"not a 4-byte ACK"}
	ErrNotAckList  = &Error{"not an ACK list"}
	ErrShortBuffer = &Error{"buffer too small"}
	ErrShortKDH    = &Error{"kernel dump header shorter than 512 bytes"}
	ErrKeyShort    = &Error{"key blob shorter than its 37-byte header"}
	ErrKeyLength   = &Error{"key blob shorter than its encrypted key size"}
)
