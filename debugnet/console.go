package debugnet

import (
	"io"
	"net/netip"
	"strconv"
)

// Line builds console messages without allocating: its buffer is reserved
// once, and it writes to the console as soon as a line is complete. After a
// panic fmt cannot be used, so this is how debugnet and netdump speak.
type Line struct {
	w   io.Writer
	buf []byte
}

// NewLine returns a Line that writes to w (nil: discard).
func NewLine(w io.Writer) *Line { return &Line{w: w, buf: make([]byte, 0, 256)} }

// S appends a string.
func (l *Line) S(s string) *Line { l.buf = append(l.buf, s...); return l }

// B appends bytes.
func (l *Line) B(b []byte) *Line { l.buf = append(l.buf, b...); return l }

// U appends an unsigned number.
func (l *Line) U(v uint64) *Line { l.buf = strconv.AppendUint(l.buf, v, 10); return l }

// X appends a number in hexadecimal with a 0x prefix.
func (l *Line) X(v uint64) *Line {
	l.buf = append(l.buf, "0x"...)
	l.buf = strconv.AppendUint(l.buf, v, 16)
	return l
}

// IP appends an address.
func (l *Line) IP(a netip.Addr) *Line { l.buf = a.AppendTo(l.buf); return l }

// MAC appends an Ethernet address as xx:xx:xx:xx:xx:xx.
func (l *Line) MAC(m [6]byte) *Line {
	const hex = "0123456789abcdef"
	for i, b := range m {
		if i > 0 {
			l.buf = append(l.buf, ':')
		}
		l.buf = append(l.buf, hex[b>>4], hex[b&15])
	}
	return l
}

// Flush writes what was built and starts over.
func (l *Line) Flush() {
	if l.w != nil && len(l.buf) > 0 {
		l.w.Write(l.buf) //nolint:errcheck // a console that fails has nowhere to report
	}
	l.buf = l.buf[:0]
}
