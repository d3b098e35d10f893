package debugnet

import (
	"bytes"
	"net/netip"
	"strings"
	"testing"
)

// countingWriter keeps what was written and the size of each write.
type countingWriter struct {
	bytes.Buffer
	writes []int
}

func (w *countingWriter) Write(p []byte) (int, error) {
	w.writes = append(w.writes, len(p))
	return w.Buffer.Write(p)
}

// The printer never outgrows its buffer, even for text several times its
// size, and turns every LF, and only a bare one, into CR LF.
func TestLine(t *testing.T) {
	long := strings.Repeat("0123456789\n", 60)
	var out countingWriter
	l := NewLine(&out)
	l.S(long).B([]byte("x\n\ny\r\n")).Write([]byte(long))
	l.Quote([]byte(`q"\`)).Byte('\n').IP(netip.MustParseAddr("255.255.255.255")).Byte(' ').U(1280).Byte(' ').X(0xdead).Byte(' ').
		MAC([6]byte{0x52, 0x54, 0, 0x12, 0x34, 0x56}).Flush()
	crlf := strings.ReplaceAll(long, "\n", "\r\n")
	want := crlf + "x\r\n\r\ny\r\n" + crlf + `"q\"\\"` + "\r\n255.255.255.255 1280 0xdead 52:54:00:12:34:56"
	if got := out.String(); got != want {
		t.Errorf("got %q\nwant %q", got, want)
	}
	for _, n := range out.writes {
		if n > LineSize {
			t.Errorf("a write of %d bytes: the buffer grew", n)
		}
	}
	if len(out.writes) < len(want)/LineSize {
		t.Errorf("%d writes for %d bytes", len(out.writes), len(want))
	}
}

// A panic message of 1,000 bytes (the shell takes lines of up to 1,280)
// goes through without allocating; the negative control is a message
// built with append, which does.
func TestLongMessageDoesNotAllocate(t *testing.T) {
	msg := bytes.Repeat([]byte("m"), 1000)
	var out countingWriter
	out.writes = make([]int, 0, 1024)
	out.Grow(64 << 10)
	l := NewLine(&out)
	if n := testing.AllocsPerRun(20, func() {
		l.S("tamadump: panic: ").B(msg).S("\n").U(^uint64(0)).IP(netip.MustParseAddr("10.0.0.1")).Flush()
	}); n != 0 {
		t.Fatalf("%v allocations per 1,000-byte message", n)
	}
	if got := out.String(); !strings.Contains(got, "tamadump: panic: "+string(msg)+"\r\n") {
		t.Fatalf("message not printed whole: %d bytes", len(got))
	}
	var sink []byte
	buf := make([]byte, 0, LineSize)
	if n := testing.AllocsPerRun(20, func() { sink = append(buf[:0], msg...) }); n == 0 {
		t.Fatalf("append past the capacity did not allocate (%d bytes): the measurement is blind", len(sink))
	}
}
