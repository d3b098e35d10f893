package ddb

import (
	"io"

	"github.com/tamadump/tamadump/debugnet"
)

// MaxLine is the longest command line, in bytes: room for a MaxPath-byte
// dumpon -p path and the rest of the command.
const MaxLine = 1280

// editor reads lines from a dumb serial terminal: it echoes what is typed,
// erases on backspace or DEL, ends a line on CR, LF or CRLF and drops other
// control characters, escape sequences (arrow keys) and non-ASCII bytes.
// Its buffers are made once; reading a line never allocates.
type editor struct {
	r    io.Reader
	echo *debugnet.Line

	in       [64]byte // bytes read but not yet consumed: in[inPos:inEnd]
	inPos    int
	inEnd    int
	inErr    error // error that came with in's bytes, returned once they are used
	line     [MaxLine]byte
	n        int  // bytes in line
	overflow bool // bytes were dropped because the line was full
	afterCR  bool // the last byte ended a line with CR: a following LF belongs to it
	esc      int  // escape-sequence state: escNone, escStart, escCSI or escSS3
}

const (
	escNone  = iota
	escStart // after ESC
	escCSI   // after ESC [: parameters until a final byte 0x40-0x7e
	escSS3   // after ESC O: one more byte (cursor keys in application mode)
)

const (
	bs  = 0x08
	del = 0x7f
	bel = 0x07
	esc = 0x1b
)

// discard drops a partly typed line, e.g. when the debugger takes over the
// console in the middle of one. Bytes already read stay queued.
func (e *editor) discard() {
	e.n, e.overflow, e.esc = 0, false, escNone
}

// readLine returns the next line, without its end. The line is valid until
// the next call. tooLong reports that the line was longer than MaxLine and
// was cut; the caller should refuse it rather than run part of a command.
// A Reader with nothing to deliver may return 0, nil: readLine polls again.
func (e *editor) readLine() (line []byte, tooLong bool, err error) {
	for {
		for e.inPos < e.inEnd {
			c := e.in[e.inPos]
			e.inPos++
			if e.take(c) {
				e.echo.Byte('\n')
				e.echo.Flush()
				line, tooLong = e.line[:e.n], e.overflow
				e.n, e.overflow = 0, false
				return line, tooLong, nil
			}
		}
		e.echo.Flush()
		if e.inErr != nil {
			err, e.inErr = e.inErr, nil
			return nil, false, err
		}
		n, err := e.r.Read(e.in[:])
		e.inPos, e.inEnd, e.inErr = 0, n, err
	}
}

// take handles one input byte and reports whether it ended the line.
func (e *editor) take(c byte) bool {
	crlf := e.afterCR && c == '\n'
	e.afterCR = false
	if c < ' ' {
		e.esc = escNone // a control character cuts an escape sequence short, so Enter always ends the line
	}
	switch {
	case crlf:
		return false
	case e.esc == escStart:
		switch c {
		case '[':
			e.esc = escCSI
		case 'O':
			e.esc = escSS3
		default:
			e.esc = escNone
		}
		return false
	case e.esc == escSS3:
		e.esc = escNone
		return false
	case e.esc == escCSI:
		if c >= 0x40 && c <= 0x7e {
			e.esc = escNone
		}
		return false
	case c == '\r':
		e.afterCR = true
		return true
	case c == '\n':
		return true
	case c == bs || c == del:
		if e.n > 0 {
			e.n--
			e.echo.S("\b \b")
		}
	case c == esc:
		e.esc = escStart
	case c < ' ' || c > '~':
		// other control characters and non-ASCII: ignored
	case e.n == len(e.line):
		e.overflow = true
		e.echo.Byte(bel)
	default:
		e.line[e.n] = c
		e.n++
		e.echo.Byte(c)
	}
	return false
}
