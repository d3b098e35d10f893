package ddb

import (
	"bytes"
	"errors"
	"io"
	"strings"
	"testing"
	"testing/iotest"

	"github.com/tamadump/tamadump/debugnet"
)

type readResult struct {
	line    string
	tooLong bool
}

// readAll runs the editor over r until it fails, returning the lines, the
// echo and the final error.
func readAll(r io.Reader) (lines []readResult, echo string, err error) {
	var out bytes.Buffer
	p := debugnet.NewLine(&out)
	e := editor{r: r, echo: p}
	for {
		line, tooLong, err := e.readLine()
		if err != nil {
			return lines, out.String(), err
		}
		lines = append(lines, readResult{string(line), tooLong})
	}
}

func TestEditor(t *testing.T) {
	long := strings.Repeat("x", MaxLine)
	for _, tc := range []struct {
		name  string
		in    string
		lines []readResult
		echo  string
	}{
		{"CR", "abc\r", []readResult{{"abc", false}}, "abc\r\n"},
		{"LF", "abc\n", []readResult{{"abc", false}}, "abc\r\n"},
		{"CRLF is one line end", "abc\r\ndef\r\n", []readResult{{"abc", false}, {"def", false}}, "abc\r\ndef\r\n"},
		{"CR CR is two", "\r\r", []readResult{{"", false}, {"", false}}, "\r\n\r\n"},
		{"LF CR is two", "\n\r", []readResult{{"", false}, {"", false}}, "\r\n\r\n"},
		{"LF LF is two", "a\n\nb\n", []readResult{{"a", false}, {"", false}, {"b", false}}, "a\r\n\r\nb\r\n"},
		{"backspace and DEL", "ab\bc\x7f\x7fd\r", []readResult{{"d", false}}, "ab\b \bc\b \b\b \bd\r\n"},
		{"backspace on an empty line", "\b\x7fa\r", []readResult{{"a", false}}, "a\r\n"},
		{"control characters", "a\x01\x03\tb\x00\r", []readResult{{"ab", false}}, "ab\r\n"},
		{"non-ASCII", "a\xc3\xa9b\xff\r", []readResult{{"ab", false}}, "ab\r\n"},
		{"arrow keys", "a\x1b[Ab\x1b[1;5Cc\x1bOBd\x1bxe\r", []readResult{{"abcde", false}}, "abcde\r\n"},
		{"Enter ends an escape sequence", "a\x1b[1\rb\x1b\r", []readResult{{"a", false}, {"b", false}}, "a\r\nb\r\n"},
		{"full line", long + "\r", []readResult{{long, false}}, long + "\r\n"},
		{"overlong line", long + "yz\r" + "ok\r", []readResult{{long, true}, {"ok", false}}, long + "\a\a\r\nok\r\n"},
		{"overlong then backspace", long + "y\b\r", []readResult{{long[1:], true}}, long + "\a\b \b\r\n"},
		{"partial line at EOF is dropped", "ab\rcd", []readResult{{"ab", false}}, "ab\r\ncd"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for _, r := range []struct {
				name string
				r    io.Reader
			}{
				{"whole", strings.NewReader(tc.in)},
				{"bytewise", iotest.OneByteReader(strings.NewReader(tc.in))},
			} {
				lines, echo, err := readAll(r.r)
				if err != io.EOF {
					t.Errorf("%s: err %v, want EOF", r.name, err)
				}
				if !equalResults(lines, tc.lines) {
					t.Errorf("%s: lines %+v, want %+v", r.name, lines, tc.lines)
				}
				if echo != tc.echo {
					t.Errorf("%s: echo %q, want %q", r.name, echo, tc.echo)
				}
			}
		})
	}
}

func equalResults(a, b []readResult) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// idleReader answers (0, nil) between bytes, as a polled UART with nothing
// received does.
type idleReader struct {
	data []byte
	idle bool
}

func (r *idleReader) Read(b []byte) (int, error) {
	r.idle = !r.idle
	if r.idle {
		return 0, nil
	}
	if len(r.data) == 0 {
		return 0, io.EOF
	}
	b[0] = r.data[0]
	r.data = r.data[1:]
	return 1, nil
}

func TestEditorPollsIdleReader(t *testing.T) {
	lines, echo, err := readAll(&idleReader{data: []byte("ab\r\ncd\n")})
	if err != io.EOF || !equalResults(lines, []readResult{{"ab", false}, {"cd", false}}) || echo != "ab\r\ncd\r\n" {
		t.Fatalf("got %+v %q %v", lines, echo, err)
	}
}

// A Reader may return data together with an error: the data is used first.
func TestEditorDataWithError(t *testing.T) {
	boom := errors.New("uart overrun")
	lines, _, err := readAll(iotest.DataErrReader(iotest.ErrReader(boom)))
	if err != boom || len(lines) != 0 {
		t.Fatalf("got %+v %v", lines, err)
	}
	r := &dataErr{data: "one\rtwo\r", err: boom}
	lines, _, err = readAll(r)
	if err != boom || !equalResults(lines, []readResult{{"one", false}, {"two", false}}) {
		t.Fatalf("got %+v %v", lines, err)
	}
}

type dataErr struct {
	data string
	err  error
}

func (r *dataErr) Read(b []byte) (int, error) {
	n := copy(b, r.data)
	r.data = r.data[n:]
	return n, r.err
}

func TestEditorDiscard(t *testing.T) {
	var out bytes.Buffer
	p := debugnet.NewLine(&out)
	e := editor{r: &dataErr{data: "typed\x1b[", err: io.EOF}, echo: p}
	if _, _, err := e.readLine(); err != io.EOF {
		t.Fatal(err)
	}
	e.discard()
	e.r = strings.NewReader("Anew\r")
	line, _, err := e.readLine()
	if err != nil || string(line) != "Anew" {
		t.Fatalf("after discard: %q %v", line, err)
	}
}
