// Package loadgen is a netdump load generator: clients that dump
// synthetic cores to a netdump server over UDP with a sliding window
// (HERALD, VMCORE, KDH, FINISHED), batching their sends and reads
// (sendmmsg/recvmmsg), and the measurements around them: the server
// process's CPU time and its session sockets' receive drops from /proc,
// and byte-exact verification of the files it wrote.
package loadgen

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"net/netip"
	"syscall"
	"time"

	"golang.org/x/net/ipv4"

	"github.com/tamadump/tamadump/netdump/transport"
	"github.com/tamadump/tamadump/netdump/wire"
)

// Session configures one client's dump.
type Session struct {
	// Local is the client's address: it sends from it and receives ACKs
	// on it (the server's ACK port).
	Local netip.AddrPort
	// Server is where the HERALD goes.
	Server netip.AddrPort
	// Size is the vmcore's length, Payload the bytes per VMCORE message,
	// Window the messages in flight.
	Size    int64
	Payload int
	Window  int
	// Seed makes the content: two sessions with different seeds send
	// different bytes.
	Seed uint64
	// RTO is the time after which an unacknowledged message is sent
	// again; FinishTimeout how long the FINISHED's ACK may take (the
	// server syncs the file first).
	RTO, FinishTimeout time.Duration
	// Trains sends runs of new messages with UDP segmentation offload:
	// one system call and one trip through the sender's stack per run,
	// yet one datagram per message on the wire (what a NIC would
	// deliver), so that the client costs less than the server it
	// measures. Without it, or where the kernel refuses, sendmmsg.
	Trains bool
	// Lists asks for ACK lists in the HERALD (as tamadump's client does;
	// FreeBSD's server ignores it).
	Lists bool
	// BeforeFinish, if set, runs once every data message is
	// acknowledged and before the KDH, with the server's data port (the
	// session socket is still open then).
	BeforeFinish func(data netip.AddrPort)
}

// Result is what a session measured.
type Result struct {
	Sent        int64         // datagrams sent, retransmissions included
	Retransmits int64         // of them, sent again
	Elapsed     time.Duration // from the HERALD to the FINISHED's ACK
	Data        netip.AddrPort
}

// content is a session's dump: a random block repeated. Its period is
// no multiple of any payload size or page, so a payload written at a
// wrong offset changes the file.
type content struct {
	block []byte // period bytes, then a copy of the first maxPayload
}

const period = 1<<20 + 4099

func newContent(seed uint64) *content {
	r := rand.New(rand.NewPCG(seed, 0x6c6f6164))
	b := make([]byte, period+wire.MaxPayload)
	for i := 0; i+8 <= period; i += 8 {
		v := r.Uint64()
		for k := range 8 {
			b[i+k] = byte(v >> (8 * k))
		}
	}
	for i := period &^ 7; i < period; i++ {
		b[i] = byte(r.Uint32())
	}
	copy(b[period:], b[:wire.MaxPayload])
	return &content{block: b}
}

// at is the n bytes at off (n at most wire.MaxPayload).
func (c *content) at(off int64, n int) []byte {
	p := int(off % period)
	return c.block[p : p+n]
}

// Digest is the SHA-256 of the first size bytes of the content of seed,
// what a session with that seed sends.
func Digest(seed uint64, size int64) string {
	c := newContent(seed)
	h := sha256.New()
	for off := int64(0); off < size; {
		n := min(size-off, int64(period-int(off%period)))
		h.Write(c.block[off%period : off%period+n])
		off += n
	}
	return hex.EncodeToString(h.Sum(nil))
}

// slot is a message in flight.
type slot struct {
	seq    uint32
	off    int64
	n      int
	sentAt time.Time
	acked  bool
	hdr    [wire.HeaderSize]byte
}

// client is one session's state.
type client struct {
	cfg  Session
	conn *net.UDPConn
	pc   *ipv4.PacketConn
	data *net.UDPAddr
	res  Result
	body *content

	out   []ipv4.Message
	in    []ipv4.Message
	inBuf [][]byte
	gro   bool // reads may hold several ACKs

	trains  bool
	oob     []byte   // UDP_SEGMENT of a message's datagram size
	train   [][]byte // buffers of the runs being sent
	perRun  int      // messages per run
	runSize int      // bytes per message in a run
}

// ErrTimeout: the server stopped answering.
var ErrTimeout = errors.New("loadgen: no ACK from the server")

// Run dumps one session and reports what it measured.
func Run(cfg Session) (Result, error) {
	if cfg.Payload <= 0 || cfg.Payload > wire.MaxPayload || cfg.Window <= 0 || cfg.Size < 0 {
		return Result{}, fmt.Errorf("loadgen: bad payload %d or window %d", cfg.Payload, cfg.Window)
	}
	if cfg.RTO <= 0 {
		cfg.RTO = 200 * time.Millisecond
	}
	if cfg.FinishTimeout <= 0 {
		cfg.FinishTimeout = 30 * time.Second
	}
	conn, err := net.ListenUDP("udp4", net.UDPAddrFromAddrPort(cfg.Local))
	if err != nil {
		return Result{}, err
	}
	defer conn.Close()
	// ACKs of a whole window must fit.
	conn.SetReadBuffer(1 << 20)
	conn.SetWriteBuffer(4 << 20)
	c := &client{cfg: cfg, conn: conn, pc: ipv4.NewPacketConn(conn), body: newContent(cfg.Seed)}
	batch := min(cfg.Window, 64)
	c.runSize = wire.HeaderSize + cfg.Payload
	// A run is one IPv4 datagram for the kernel until it is cut, and at
	// most 64 segments.
	c.perRun = min(64, (65535-20-8)/c.runSize)
	if c.trains = cfg.Trains && c.perRun > 1; c.trains {
		c.oob = transport.SegmentOOB(c.runSize)
		for range (batch + c.perRun - 1) / c.perRun {
			c.train = append(c.train, make([]byte, 0, c.perRun*c.runSize))
		}
	}
	c.out = make([]ipv4.Message, batch)
	// With UDP_GRO a read may hold a train of ACKs, as the server sends
	// them: on loopback the kernel then does not cut the train into a
	// socket buffer per ACK in the server's context (on a wire that is
	// the client machine's work, not the server's).
	ackBuf := 64
	if rc, err := conn.SyscallConn(); err == nil && transport.EnableGRO(rc) {
		c.gro = true
		ackBuf = 64 << 10
	}
	c.in = make([]ipv4.Message, batch)
	c.inBuf = make([][]byte, batch)
	for i := range c.in {
		c.inBuf[i] = make([]byte, ackBuf)
		c.in[i].Buffers = [][]byte{c.inBuf[i]}
		if c.gro {
			c.in[i].OOB = transport.GROOOB()
		}
	}
	start := time.Now()
	if err := c.run(); err != nil {
		return c.res, err
	}
	c.res.Elapsed = time.Since(start)
	return c.res, nil
}

func (c *client) run() error {
	seq := uint32(1)
	herald := wire.Header{Type: wire.Herald, Seqno: seq}
	if c.cfg.Lists {
		herald.Aux2 = wire.AckLists
	}
	if err := c.single(net.UDPAddrFromAddrPort(c.cfg.Server), herald, nil, 10, c.cfg.RTO*5); err != nil {
		return fmt.Errorf("HERALD: %w", err)
	}
	c.res.Data = c.data.AddrPort()
	seq++
	next, err := c.window(seq)
	if err != nil {
		return fmt.Errorf("VMCORE: %w", err)
	}
	seq = next
	if c.cfg.BeforeFinish != nil {
		c.cfg.BeforeFinish(c.res.Data)
	}
	var k wire.KernelDumpHeader
	wire.SetText(k.Magic[:], wire.KDHMagic)
	wire.SetText(k.Architecture[:], "amd64")
	k.Version = wire.KDHVersion
	k.ArchitectureVersion = 2
	k.DumpLength = uint64(c.cfg.Size)
	k.DumpExtent = uint64(c.cfg.Size)
	k.DumpTime = uint64(time.Now().Unix())
	k.BlockSize = 4096
	wire.SetText(k.Hostname[:], "loadgen")
	k.SetVersionString("netdumpload\n")
	wire.SetText(k.PanicString[:], "load test")
	kdh := make([]byte, wire.KDHSize)
	k.Put(kdh)
	if err := c.single(c.data, wire.Header{Type: wire.KDH, Seqno: seq}, kdh, 20, c.cfg.RTO); err != nil {
		return fmt.Errorf("KDH: %w", err)
	}
	seq++
	if err := c.single(c.data, wire.Header{Type: wire.Finished, Seqno: seq}, nil, 3, c.cfg.FinishTimeout); err != nil {
		return fmt.Errorf("FINISHED: %w", err)
	}
	return nil
}

// single sends one message and waits for its ACK, retrying; the first
// ACK's source becomes the data address.
func (c *client) single(to *net.UDPAddr, h wire.Header, payload []byte, tries int, wait time.Duration) error {
	b := make([]byte, wire.HeaderSize+len(payload))
	if _, err := wire.AppendMessage(b, h, payload); err != nil {
		return err
	}
	buf := make([]byte, wire.MaxAckListSize)
	for try := 0; try < tries; try++ {
		if _, err := c.conn.WriteToUDP(b, to); err != nil {
			return err
		}
		c.res.Sent++
		if try > 0 {
			c.res.Retransmits++
		}
		c.conn.SetReadDeadline(time.Now().Add(wait))
		for {
			n, from, err := c.conn.ReadFromUDP(buf)
			if err != nil {
				break
			}
			if a, err := wire.ParseAcks(buf[:n]); err == nil && a.Has(h.Seqno) {
				if c.data == nil {
					c.data = from
				}
				return nil
			}
		}
	}
	return ErrTimeout
}

// window sends the dump's VMCOREs from seqno first with up to Window in
// flight and returns the next seqno once all are acknowledged.
func (c *client) window(first uint32) (uint32, error) {
	cfg := c.cfg
	total := (cfg.Size + int64(cfg.Payload) - 1) / int64(cfg.Payload)
	ring := make([]slot, cfg.Window)
	base, next := int64(0), int64(0) // message indexes: acked below base, sent below next
	lastProgress := time.Now()
	for base < total {
		now := time.Now()
		k, msgs := 0, 0
		// Retransmit what waited too long (oldest first), then fill the
		// window.
		for i := base; i < next && msgs < len(c.out); i++ {
			s := &ring[i%int64(cfg.Window)]
			if !s.acked && now.Sub(s.sentAt) >= cfg.RTO {
				c.queue(k, s)
				s.sentAt = now
				k++
				msgs++
				c.res.Retransmits++
			}
		}
		runs, inRun := 0, 0
		for next < total && next-base < int64(cfg.Window) && msgs < len(c.out) {
			s := &ring[next%int64(cfg.Window)]
			off := next * int64(cfg.Payload)
			*s = slot{seq: first + uint32(next), off: off, n: int(min(int64(cfg.Payload), cfg.Size-off)), sentAt: now}
			wire.Header{Type: wire.VMCore, Seqno: s.seq, Offset: uint64(off), Len: uint32(s.n)}.Put(s.hdr[:])
			if c.trains {
				// Runs of whole messages; a short one (the last) ends a
				// run.
				if inRun == 0 || inRun == c.perRun {
					c.train[runs] = c.train[runs][:0]
					c.out[k] = ipv4.Message{Buffers: [][]byte{nil}, OOB: c.oob, Addr: c.data}
					runs, inRun, k = runs+1, 0, k+1
				}
				t := append(append(c.train[runs-1], s.hdr[:]...), c.body.at(off, s.n)...)
				c.train[runs-1] = t
				c.out[k-1].Buffers[0] = t
				inRun++
				if s.n < cfg.Payload {
					inRun = c.perRun
				}
			} else {
				c.queue(k, s)
				k++
			}
			msgs++
			next++
		}
		for sent := 0; sent < k; {
			n, err := c.pc.WriteBatch(c.out[sent:k], 0)
			if err != nil {
				if c.trains && errors.Is(err, syscall.EIO) {
					// No segmentation offload: what was not sent goes
					// again after the RTO, one datagram each.
					c.trains = false
					break
				}
				return 0, err
			}
			sent += n
		}
		c.res.Sent += int64(msgs)
		// Wait for ACKs, at most until the oldest message is due again.
		oldest := ring[base%int64(cfg.Window)].sentAt
		c.pc.SetReadDeadline(oldest.Add(cfg.RTO))
		n, err := c.pc.ReadBatch(c.in, 0)
		if isTimeout(err) {
			// This goroutine may have waited for a CPU past the deadline
			// while the ACKs were there: look once more before
			// retransmitting.
			c.pc.SetReadDeadline(time.Now().Add(time.Millisecond))
			n, err = c.pc.ReadBatch(c.in, 0)
		}
		if err != nil {
			if isTimeout(err) {
				if time.Since(lastProgress) > 30*cfg.RTO+5*time.Second {
					return 0, ErrTimeout
				}
				continue
			}
			return 0, err
		}
		for i := range n {
			b := c.inBuf[i][:c.in[i].N]
			seg := len(b)
			if c.gro {
				if g := transport.GROSize(c.in[i].OOB[:c.in[i].NN]); g > 0 {
					seg = g
				}
			}
			for ; len(b) > 0; b = b[min(seg, len(b)):] {
				acks, err := wire.ParseAcks(b[:min(seg, len(b))])
				for j := 0; err == nil && j < acks.Len(); j++ {
					a := acks.Seqno(j)
					idx := int64(a - first)
					if a < first || idx < base || idx >= next {
						continue
					}
					ring[idx%int64(cfg.Window)].acked = true
				}
			}
		}
		for base < next && ring[base%int64(cfg.Window)].acked {
			base++
			lastProgress = time.Now()
		}
	}
	return first + uint32(total), nil
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

func (c *client) queue(k int, s *slot) {
	c.out[k].Buffers = append(c.out[k].Buffers[:0], s.hdr[:], c.body.at(s.off, s.n))
	c.out[k].OOB = nil
	c.out[k].Addr = c.data
}
