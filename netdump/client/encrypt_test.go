package client

import (
	"bytes"
	"crypto/rand"
	"crypto/rsa"
	"encoding/binary"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"gvisor.dev/gvisor/pkg/tcpip/header"

	"github.com/tamadump/tamadump/debugnet/linktest"
	"github.com/tamadump/tamadump/netdump/dumptest"
	"github.com/tamadump/tamadump/netdump/ekcd"
	"github.com/tamadump/tamadump/netdump/elfcore"
	"github.com/tamadump/tamadump/netdump/wire"
)

var (
	rsaOnce sync.Once
	rsaKey  *rsa.PrivateKey
)

func testKey(t testing.TB) *rsa.PrivateKey {
	rsaOnce.Do(func() {
		var err error
		if rsaKey, err = rsa.GenerateKey(rand.Reader, 2048); err != nil {
			panic(err)
		}
	})
	return rsaKey
}

func encryptor(t testing.TB, alg ekcd.Algorithm) *ekcd.Encryptor {
	e, err := ekcd.NewEncryptor(&testKey(t).PublicKey, alg, rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return e
}

// An encrypted dump through netdumpd's core: the server keeps it as
// vmcore_encrypted with the key file beside it, and the two decrypt to the
// core that was dumped, lost and retransmitted packets included.
func TestEncryptedDump(t *testing.T) {
	for _, tc := range []struct {
		name  string
		alg   ekcd.Algorithm
		elide bool
		f     linktest.Faults
	}{
		{"aes", ekcd.AES256CBC, false, linktest.Faults{}},
		{"chacha20", ekcd.ChaCha20, false, linktest.Faults{}},
		{"aes-elide", ekcd.AES256CBC, true, linktest.Faults{}},
		{"chacha20-elide", ekcd.ChaCha20, true, linktest.Faults{}},
		{"aes-loss-5%", ekcd.AES256CBC, false, linktest.Faults{Loss: 0.05, Reorder: 0.05, Seed: 42}},
		{"chacha20-loss-5%-batch", ekcd.ChaCha20, true, linktest.Faults{Loss: 0.05, Seed: 43}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := newTestbed(t, 1500, tc.f)
			cfg := b.config()
			cfg.Encrypt, cfg.ElideEncrypted = encryptor(t, tc.alg), tc.elide
			cfg.Batch = strings.HasSuffix(tc.name, "batch")
			segs := segments(256<<10+100, 0.3, 7) // not a whole number of blocks
			core := newBody(t, segs, "boom")
			c, err := New(b.link, cfg)
			if err != nil {
				t.Fatal(err)
			}
			if c.PayloadSize()%ekcd.BlockSize != 0 {
				t.Fatalf("payload %d not a whole number of cipher blocks", c.PayloadSize())
			}
			if err := c.Dump(core, newKDH("boom"), 64); err != nil {
				t.Fatalf("dump: %v\n%s", err, b.console)
			}
			st := c.Stats()
			if (st.ZeroBytes != 0) != tc.elide {
				t.Fatalf("elide=%v but %d zero bytes declared", tc.elide, st.ZeroBytes)
			}
			info := string(dumptest.WaitFile(t, filepath.Join(b.Dir, "info.127.0.9.2.0")))
			if !strings.Contains(info, "Dump complete") {
				t.Fatalf("info:\n%s", info)
			}
			enc := filepath.Join(b.Dir, "vmcore_encrypted.127.0.9.2.0")
			raw, err := os.ReadFile(enc)
			if err != nil {
				t.Fatal(err)
			}
			want := make([]byte, (core.Size()+15)/16*16)
			core.ReadAt(want[:core.Size()], 0)
			if len(raw) != len(want) {
				t.Fatalf("encrypted core %d bytes, want %d", len(raw), len(want))
			}
			if bytes.Contains(raw, want[8192:8192+256]) {
				t.Fatal("plaintext in the encrypted core")
			}
			out := filepath.Join(b.Dir, "vmcore.dec")
			if _, err := ekcd.DecryptFiles(testKey(t), filepath.Join(b.Dir, "key.127.0.9.2.0"), enc, out, false); err != nil {
				t.Fatal(err)
			}
			got, _ := os.ReadFile(out)
			if !bytes.Equal(got, want) {
				t.Fatal("decrypted core differs from the dumped one")
			}
			t.Logf("%+v", st)
		})
	}
}

// recorder is a netdump server reduced to its ACKs that keeps what a
// FreeBSD netdumpd's file would be: the data written at their offsets,
// nothing for declared zero runs.
type recorder struct {
	link *linktest.Link
	out  [128]byte
	ack  [4]byte
	end  int64 // the file's length
	key  int64 // bytes of EKCD_KEY received
	kdh  wire.KernelDumpHeader
}

func newRecorder() (*linktest.Link, *recorder) {
	l := linktest.New(clientMAC, 1500, 1024, linktest.Faults{})
	r := &recorder{link: l}
	l.Attach(r.input)
	return l, r
}

func (r *recorder) input(f []byte) {
	switch header.Ethernet(f).Type() {
	case header.ARPProtocolNumber:
		r.link.Deliver(dumptest.ARPFrame(r.out[:], header.ARPReply, dumptest.ServerMAC, clientMAC, serverPrefix.Addr(), clientAddr))
	case header.IPv4ProtocolNumber:
		u := header.UDP(header.IPv4(f[header.EthernetMinimumSize:]).Payload())
		h, p, err := wire.ParseMessage(u.Payload())
		if err != nil {
			return
		}
		switch h.Type {
		case wire.VMCore:
			r.end = max(r.end, int64(h.Offset)+int64(len(p)))
		case wire.EKCDKey:
			r.key = max(r.key, int64(h.Offset)+int64(len(p)))
		case wire.KDH:
			wire.ParseKDH(p, &r.kdh)
		}
		binary.BigEndian.PutUint32(r.ack[:], h.Seqno)
		r.link.Deliver(dumptest.Frame(r.out[:], dumptest.ServerMAC, clientMAC, serverPrefix.Addr(), clientAddr, 31000, wire.ClientPort, r.ack[:]))
	}
}

// A dump that ends in a zero run still ends with data, so a server that
// writes nothing for declared zeros (FreeBSD's) has a file of full length;
// the KDH of an encrypted dump has the key's size and the padded length.
func TestEndsWithData(t *testing.T) {
	mem := make([]byte, 12<<10)
	copy(mem, "data")
	segs := []elfcore.Segment{{Phys: 0x100000, Virt: 0x100000, Data: mem}}
	for _, tc := range []struct {
		name string
		enc  *ekcd.Encryptor
	}{{"clear", nil}, {"encrypted-elide", encryptor(t, ekcd.AES256CBC)}} {
		link, r := newRecorder()
		cfg := responderConfig()
		cfg.Encrypt, cfg.ElideEncrypted = tc.enc, true
		c, err := New(link, cfg)
		if err != nil {
			t.Fatal(err)
		}
		core := newBody(t, segs, "boom")
		if err := c.Dump(core, newKDH("boom"), 1); err != nil {
			t.Fatal(err)
		}
		if c.Stats().ZeroBytes == 0 {
			t.Fatalf("%s: no zero run declared: the test does not test", tc.name)
		}
		if r.end != int64(r.kdh.DumpLength) || r.end < core.Size() {
			t.Errorf("%s: the file ends at %d, the dump is %d bytes", tc.name, r.end, r.kdh.DumpLength)
		}
		wantKey := uint32(0)
		if tc.enc != nil {
			wantKey = uint32(len(tc.enc.KeyBlob()))
		}
		if r.kdh.DumpKeySize != wantKey || r.key != int64(wantKey) {
			t.Errorf("%s: KDH key size %d, key bytes sent %d, want %d", tc.name, r.kdh.DumpKeySize, r.key, wantKey)
		}
	}
}

// Encrypted dumps allocate nothing, with either cipher; a body that
// allocates shows the count sees it.
func TestEncryptedNoAllocation(t *testing.T) {
	core := newBody(t, segments(1<<20, 0.5, 9), "boom")
	kdh := newKDH("boom")
	count := func(c *Client, body Body) uint64 {
		if err := c.Dump(body, kdh, 1); err != nil { // first-use paths
			t.Fatal(err)
		}
		return dumptest.HeapAllocs(func() {
			for range 3 {
				if err := c.Dump(body, kdh, 1); err != nil {
					t.Fatal(err)
				}
			}
		})
	}
	for _, alg := range []ekcd.Algorithm{ekcd.AES256CBC, ekcd.ChaCha20} {
		for _, elide := range []bool{false, true} {
			link, _ := dumptest.NewResponder(1500)
			cfg := responderConfig()
			cfg.Encrypt, cfg.ElideEncrypted = encryptor(t, alg), elide
			c, err := New(link, cfg)
			if err != nil {
				t.Fatal(err)
			}
			if n := count(c, core); n != 0 {
				t.Errorf("%v elide=%v: %d heap allocations during 3 dumps", alg, elide, n)
			}
			if alg == ekcd.AES256CBC && !elide {
				if n := count(c, allocBody{core}); n == 0 {
					t.Error("control: a body allocating per read went unseen")
				}
			}
		}
	}
}

// BenchmarkEncrypted is BenchmarkGoodput with the dump encrypted; the
// ratio to it is the cost of encryption (scripts/bench-ratios).
func BenchmarkEncrypted(b *testing.B) {
	for _, alg := range []ekcd.Algorithm{ekcd.AES256CBC, ekcd.ChaCha20} {
		b.Run(alg.String(), func(b *testing.B) {
			e := encryptor(b, alg)
			benchDump(b, linktest.Faults{}, func(c *Config) { c.Encrypt = e }, 16<<20, 0)
		})
	}
}
