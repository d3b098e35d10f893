package ddb

import (
	"bytes"
	"net/netip"
	"strings"
	"testing"
)

// The printer never outgrows its buffer, even for text several times its
// size, and turns every LF into CR LF.
func TestPrinter(t *testing.T) {
	long := strings.Repeat("0123456789\n", 20)
	for _, size := range []int{64, 65, 100} {
		var out bytes.Buffer
		p := newPrinter(&out, size)
		p.str(long)
		p.bytes([]byte("x\n\ny"))
		p.Write([]byte(long))
		p.quote([]byte(`q"\`))
		p.byte('\n')
		p.addr(netip.MustParseAddr("255.255.255.255"))
		p.byte(' ')
		p.int(-1280)
		p.flush()
		crlf := strings.ReplaceAll(long, "\n", "\r\n")
		want := crlf + "x\r\n\r\ny" + crlf + `"q\"\\"` + "\r\n255.255.255.255 -1280"
		if got := out.String(); got != want {
			t.Errorf("size %d: %q, want %q", size, got, want)
		}
		if cap(p.buf) != size {
			t.Errorf("size %d: buffer grew to %d", size, cap(p.buf))
		}
	}
}
