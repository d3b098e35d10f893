package loadgen

import (
	"crypto/sha256"
	"encoding/hex"
	"net/netip"
	"os"
	"strings"
	"testing"
)

func TestParseUDP(t *testing.T) {
	text := `   sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode ref pointer drops
  123: 011A007F:4E57 0A1A007F:4E58 01 00000000:00000000 00:00000000 00000000     0        0 4711 2 0000000000000000 17
  124: 0100007F:0035 00000000:0000 07 00000000:00000000 00:00000000 00000000     0        0 4712 2 0000000000000000 0
`
	socks, err := parseUDP(strings.NewReader(text))
	if err != nil {
		t.Fatal(err)
	}
	want := []UDPSocket{
		{netip.MustParseAddrPort("127.0.26.1:20055"), netip.MustParseAddrPort("127.0.26.10:20056"), 17},
		{netip.MustParseAddrPort("127.0.0.1:53"), netip.MustParseAddrPort("0.0.0.0:0"), 0},
	}
	if len(socks) != len(want) {
		t.Fatalf("%v", socks)
	}
	for i := range want {
		if socks[i] != want[i] {
			t.Errorf("line %d: %+v, want %+v", i, socks[i], want[i])
		}
	}
}

// TestContent: Digest is the hash of what at gives, across the period,
// and seeds differ.
func TestContent(t *testing.T) {
	const size = 3*period + 1000
	c := newContent(7)
	h := sha256.New()
	for off := int64(0); off < size; off += 1448 {
		h.Write(c.at(off, int(min(1448, size-off))))
	}
	if got, want := Digest(7, size), hex.EncodeToString(h.Sum(nil)); got != want {
		t.Errorf("Digest %s, the bytes sent hash to %s", got, want)
	}
	if Digest(7, 4096) == Digest(8, 4096) {
		t.Error("two seeds, one content")
	}
}

func TestCPUTime(t *testing.T) {
	d, err := CPUTime(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; d == 0 && i < 1e9; i++ {
		if i%1e6 == 0 {
			d, _ = CPUTime(os.Getpid())
		}
	}
	if d <= 0 {
		t.Errorf("CPU time %v after spinning", d)
	}
}
