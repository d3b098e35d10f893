package debugnet

import (
	"io"
	"net/netip"
	"strconv"
)

// LineSize is the capacity of a Line's buffer.
const LineSize = 256

// Line is the console printer of the panic path (the board, the shell,
// debugnet and the netdump client): after a crash fmt cannot be used, and
// nothing may allocate. Its buffer has a fixed capacity; text longer than
// that goes out in pieces as the buffer fills, and Flush writes the rest,
// so no message, however long, makes it grow. Every LF goes out as CR LF
// (a dumb terminal needs both), unless a CR already precedes it. Write
// errors are dropped: a console that fails has nowhere to report them.
type Line struct {
	w       io.Writer
	n       int
	last    byte // the last byte taken, for line ends
	buf     [LineSize]byte
	scratch [64]byte // numbers and addresses are formatted here first
}

// NewLine returns a Line that writes to w (nil: discard).
func NewLine(w io.Writer) *Line { return &Line{w: w} }

func (l *Line) put(c byte) {
	if c == '\n' && l.last != '\r' {
		l.raw('\r')
	}
	l.raw(c)
}

func (l *Line) raw(c byte) {
	if l.n == len(l.buf) {
		l.write()
	}
	l.buf[l.n] = c
	l.n++
	l.last = c
}

func (l *Line) write() {
	if l.w != nil && l.n > 0 {
		l.w.Write(l.buf[:l.n]) //nolint:errcheck // see Line
	}
	l.n = 0
}

// S appends a string.
func (l *Line) S(s string) *Line {
	for i := 0; i < len(s); i++ {
		l.put(s[i])
	}
	return l
}

// B appends bytes.
func (l *Line) B(b []byte) *Line {
	for _, c := range b {
		l.put(c)
	}
	return l
}

// Byte appends one byte.
func (l *Line) Byte(c byte) *Line { l.put(c); return l }

// Write appends p, for whoever prints through an io.Writer (a backtrace).
func (l *Line) Write(p []byte) (int, error) {
	l.B(p)
	return len(p), nil
}

// U appends an unsigned number.
func (l *Line) U(v uint64) *Line { return l.B(strconv.AppendUint(l.scratch[:0], v, 10)) }

// X appends a number in hexadecimal with a 0x prefix.
func (l *Line) X(v uint64) *Line { return l.S("0x").B(strconv.AppendUint(l.scratch[:0], v, 16)) }

// IP appends an address.
func (l *Line) IP(a netip.Addr) *Line { return l.B(a.AppendTo(l.scratch[:0])) }

// MAC appends an Ethernet address as xx:xx:xx:xx:xx:xx.
func (l *Line) MAC(m [6]byte) *Line {
	const hex = "0123456789abcdef"
	for i, b := range m {
		if i > 0 {
			l.put(':')
		}
		l.put(hex[b>>4])
		l.put(hex[b&15])
	}
	return l
}

// Quote appends b in double quotes. Console lines hold printable ASCII
// only, so escaping quote and backslash is enough to make the text
// unambiguous.
func (l *Line) Quote(b []byte) *Line {
	l.put('"')
	for _, c := range b {
		if c == '"' || c == '\\' {
			l.put('\\')
		}
		l.put(c)
	}
	l.put('"')
	return l
}

// Flush writes what is buffered.
func (l *Line) Flush() { l.write() }
