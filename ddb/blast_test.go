package ddb

import (
	"bytes"
	"net/netip"
	"strings"
	"testing"

	"github.com/tamadump/tamadump/debugnet"
)

// blastMachine is a fakeMachine that can blast.
type blastMachine struct {
	fakeMachine
	server netip.Addr
	port   uint16
	bytes  int64
}

func (m *blastMachine) Blast(server netip.Addr, port uint16, n int64) (debugnet.BlastStats, error) {
	m.server, m.port, m.bytes = server, port, n
	return debugnet.BlastStats{Datagrams: 3, Bytes: uint64(n), Elapsed: 2e6}, nil
}

func TestBlastCommand(t *testing.T) {
	for _, tc := range []struct {
		line, want string
		port       uint16
		bytes      int64
	}{
		{"blast -s 127.0.9.1 2", "blast: sent 2097152 bytes in 3 datagrams to 127.0.9.1 port 9 in 2000 us, 0 refused by the NIC", 9, 2 << 20},
		{"blast -s 127.0.9.1 -p 5000 1", "port 5000 in", 5000, 1 << 20},
		{"blast 1", "usage: blast", 0, 0},
		{"blast -s 127.0.9.1", "usage: blast", 0, 0},
		{"blast -s 127.0.9.1 -p 0 1", `-p: "0" is not a port`, 0, 0},
		{"blast -s nowhere 1", `"nowhere" is not an IPv4 or IPv6 address`, 0, 0},
		{"blast -s 127.0.9.1 x", `"x" is not a number of MiB`, 0, 0},
	} {
		m := &blastMachine{}
		var out bytes.Buffer
		s := New(m, strings.NewReader(tc.line+"\r"), &out)
		if err := s.Run(); err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(out.String(), tc.want) || m.port != tc.port || m.bytes != tc.bytes {
			t.Errorf("%q: blasted %d bytes to port %d, printed:\n%s", tc.line, m.bytes, m.port, out.String())
		}
	}
	// A machine that cannot blast says so.
	var out bytes.Buffer
	New(&fakeMachine{}, strings.NewReader("blast -s 127.0.9.1 1\r"), &out).Run() //nolint:errcheck
	if !strings.Contains(out.String(), "cannot send raw UDP") {
		t.Errorf("printed:\n%s", out.String())
	}
}
