package server

import (
	"fmt"
	"strings"
	"time"

	"github.com/tamadump/tamadump/netdump/wire"
)

// Status lines: the last line of an info file, always present. A dump is
// "in progress" from its first data until it ends; the file is replaced
// atomically at each change, so it never holds a part of a status or a
// status that is not true.
const (
	statusInProgress = "Dump incomplete: in progress"
	statusComplete   = "Dump complete"
	statusTimedOut   = "Dump incomplete: client timed out"
	statusStopped    = "Dump incomplete: netdumpd stopped during the dump"
	stoppedWhy       = "netdumpd stopped during the dump"
)

// escape makes a client-supplied text safe for one line of an info file
// or a log: printable ASCII stays, a backslash is doubled, and every other
// byte (newlines, control characters, non-ASCII) is written as \n, \t,
// \r or \xNN. A crafted header cannot start a line of its own.
func escape(s string) string {
	clean := true
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c >= 0x7f || c == '\\' {
			clean = false
			break
		}
	}
	if clean {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c == '\\':
			b.WriteString(`\\`)
		case c == '\n':
			b.WriteString(`\n`)
		case c == '\t':
			b.WriteString(`\t`)
		case c == '\r':
			b.WriteString(`\r`)
		case c < 0x20 || c >= 0x7f:
			fmt.Fprintf(&b, `\x%02x`, c)
		default:
			b.WriteByte(c)
		}
	}
	return b.String()
}

// cstr is a header string field as netdumpd takes it (its last byte
// forced to NUL), escaped.
func cstr(field []byte) string {
	return escape(string(wire.Text(field[:len(field)-1])))
}

// kdhBlock is the info file's header block, netdumpd's lines. The
// version string's own trailing newline ends its line; any other newline
// in it is escaped like every field.
func kdhBlock(k *wire.KernelDumpHeader, parityOK bool) string {
	var b strings.Builder
	fmt.Fprintf(&b, "  Architecture: %s\n", cstr(k.Architecture[:]))
	fmt.Fprintf(&b, "  Architecture Version: %d\n", int32(k.ArchitectureVersion))
	fmt.Fprintf(&b, "  Dump Length: %dB (%d MB)\n", int64(k.DumpLength), int64(k.DumpLength)>>20)
	fmt.Fprintf(&b, "  Blocksize: %d\n", int32(k.BlockSize))
	fmt.Fprintf(&b, "  Compression: %s\n", compressionName(k.Compression))
	fmt.Fprintf(&b, "  Dumptime: %s\n", time.Unix(int64(k.DumpTime), 0).Local().Format(time.ANSIC))
	fmt.Fprintf(&b, "  Hostname: %s\n", cstr(k.Hostname[:]))
	vs := string(wire.Text(k.VersionString[:len(k.VersionString)-1]))
	fmt.Fprintf(&b, "  Version String: %s\n", escape(strings.TrimSuffix(vs, "\n")))
	fmt.Fprintf(&b, "  Panic String: %s\n", cstr(k.PanicString[:]))
	check := "Pass"
	if !parityOK {
		check = "Fail"
	}
	fmt.Fprintf(&b, "  Header Parity Check: %s\n", check)
	return b.String()
}

func compressionName(v uint8) string {
	switch v {
	case wire.CompressNone:
		return "none"
	case wire.CompressGzip:
		return "gzip"
	case wire.CompressZstd:
		return "zstd"
	}
	return "???"
}
