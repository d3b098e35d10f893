package ddb

import (
	"io"
	"net/netip"
	"strconv"
)

// printer formats console output into a buffer made once, so that printing
// never allocates; it writes the buffer out when full and on flush. It ends
// lines with CR LF, as a dumb terminal needs. Write errors are dropped:
// there is nowhere else to report them.
type printer struct {
	w   io.Writer
	buf []byte // len: pending bytes; cap: fixed
}

// newPrinter makes a printer with a size-byte buffer; size must be at least
// 64, the room addr asks for.
func newPrinter(w io.Writer, size int) printer {
	return printer{w: w, buf: make([]byte, 0, size)}
}

func (p *printer) flush() {
	if len(p.buf) > 0 {
		p.w.Write(p.buf)
		p.buf = p.buf[:0]
	}
}

// room makes sure n more bytes fit without growing the buffer.
func (p *printer) room(n int) {
	if cap(p.buf)-len(p.buf) < n {
		p.flush()
	}
}

func (p *printer) byte(c byte) {
	p.room(2)
	if c == '\n' {
		p.buf = append(p.buf, '\r')
	}
	p.buf = append(p.buf, c)
}

func (p *printer) str(s string) { text(p, s) }

func (p *printer) bytes(b []byte) { text(p, b) }

// Write lets the machine print through the shell (a backtrace), with the
// same line ends.
func (p *printer) Write(b []byte) (int, error) {
	text(p, b)
	return len(b), nil
}

func text[T string | []byte](p *printer, s T) {
	for len(s) > 0 {
		i := 0
		for i < len(s) && s[i] != '\n' {
			i++
		}
		for i > 0 {
			p.room(1)
			n := min(i, cap(p.buf)-len(p.buf))
			p.buf = append(p.buf, s[:n]...)
			s, i = s[n:], i-n
		}
		if len(s) > 0 {
			p.byte('\n')
			s = s[1:]
		}
	}
}

// quote prints b in double quotes. Console lines hold printable ASCII only,
// so escaping quote and backslash is enough to make the text unambiguous.
func (p *printer) quote(b []byte) {
	p.byte('"')
	for _, c := range b {
		if c == '"' || c == '\\' {
			p.byte('\\')
		}
		p.byte(c)
	}
	p.byte('"')
}

// addr prints a; room for the longest IPv6 form keeps the IPv4 addresses
// the shell deals in from ever growing the buffer.
func (p *printer) addr(a netip.Addr) {
	p.room(len("ffff:ffff:ffff:ffff:ffff:ffff:255.255.255.255"))
	p.buf = a.AppendTo(p.buf)
}

func (p *printer) int(n int) {
	p.room(20)
	p.buf = strconv.AppendInt(p.buf, int64(n), 10)
}
