package server

import (
	"time"

	"golang.org/x/net/ipv4"
	"golang.org/x/sys/unix"

	"github.com/tamadump/tamadump/netdump/transport"
	"github.com/tamadump/tamadump/netdump/wire"
)

// Receiving in batches: a session reads every datagram its socket holds
// with one recvmmsg, handles them, and answers them with one train of
// ACKs.
const (
	// batchMax is the most datagrams one read takes.
	batchMax = 64
	// batchBytes bounds a session's read buffers. They start at
	// slotSize each (a datagram of a 9000-byte MTU fits); a larger
	// datagram is cut, dropped unacknowledged (its client sends it
	// again) and makes them as large as any, and fewer.
	batchBytes  = batchMax * slotSize
	slotSize    = 9216
	maxDatagram = wire.HeaderSize + wire.MaxPayload
	// groSlot holds the datagrams the kernel coalesces into one read
	// (UDP_GRO): at most 64 KiB.
	groSlot = 64 << 10
)

// truesize estimates what the kernel charges a receive buffer for a
// datagram of n bytes: its buffer (headers and the shared info
// included, rounded up to a power of two) and the sk_buff.
func truesize(n int) int {
	b := 1
	for b < n+28+128+320 {
		b <<= 1
	}
	return b + 256
}

// rx is a session's read buffers.
type rx struct {
	ms   []ipv4.Message
	size int
}

// setRx gives the session batch buffers of size bytes each; with GRO,
// of groSlot bytes.
func (c *session) setRx(size int) {
	if c.gro {
		size = groSlot
	}
	n := max(1, min(batchMax, batchBytes/size))
	c.rx.size = size
	c.rx.ms = make([]ipv4.Message, n)
	for i := range c.rx.ms {
		c.rx.ms[i].Buffers = [][]byte{make([]byte, size)}
		if c.gro {
			c.rx.ms[i].OOB = transport.GROOOB()
		}
	}
}

// read waits for datagrams and returns how many reads are ready (read i
// is c.datagram(i)). Until the first data there is one buffer, buf.
func (c *session) read() (int, error) {
	switch {
	case c.rx.ms != nil:
		return c.bconn.ReadBatch(c.rx.ms)
	case c.gro:
		// A read may hold several datagrams: only ReadBatch tells.
		c.first[0].Buffers[0] = c.buf
		return c.bconn.ReadBatch(c.first[:])
	}
	n, err := c.conn.Read(c.buf)
	c.single = n
	return 1, err
}

// datagram is the i-th read of the last batch: one datagram, or with
// seg > 0 several of seg bytes each (the last may be shorter). false
// means it was cut short (the buffers then grow, and the client sends
// it again).
func (c *session) datagram(i int) (b []byte, seg int, whole bool) {
	var m *ipv4.Message
	switch {
	case c.rx.ms != nil:
		m = &c.rx.ms[i]
	case c.gro:
		m = &c.first[0]
	default:
		return c.buf[:c.single], 0, true
	}
	if m.Flags&unix.MSG_TRUNC != 0 {
		if c.rx.size < maxDatagram {
			c.growRx = true
		}
		return nil, 0, false
	}
	if c.gro {
		seg = transport.GROSize(m.OOB[:m.NN])
	}
	return m.Buffers[0][:m.N], seg, true
}

// ackOwn queues the ACK of seqno; flushAcks sends what is queued.
func (c *session) ackOwn(seqno uint32) {
	var b [wire.AckSize]byte
	wire.PutAck(b[:], seqno)
	c.acks = append(c.acks, b[:]...)
}

func (c *session) flushAcks() {
	if len(c.acks) == 0 {
		return
	}
	if c.lists != nil {
		c.sendLists()
	} else if c.bconn != nil {
		if err := c.bconn.WriteTrain(c.acks, wire.AckSize); err != nil && !c.stopping() {
			c.s.logf(LevelError, "send(): %s", strerror(err))
		}
	} else {
		for b := c.acks; len(b) > 0; b = b[wire.AckSize:] {
			c.send(b[:wire.AckSize])
		}
	}
	c.acks = c.acks[:0]
}

// ackLists is what a session that sends ACK lists keeps: the seqnos the
// last two lists acknowledged fresh (the last list's first), which the
// next one repeats, and the list's buffer.
type ackLists struct {
	prev  [2 * listFresh * wire.AckSize]byte
	nPrev int // bytes of prev in use
	nLast int // of them, the last list's
	buf   [wire.MaxAckListSize]byte
	sent  int // the last datagram sent, in buf
	// repeatAt is when the last datagram goes again if nothing has
	// come meanwhile (zero: it went again, or none was sent).
	repeatAt time.Time
}

// listRepeat is how long a session that sends ACK lists waits for more
// data before it sends its last list again, once. A window's last list
// has no list after it to repeat it: lost, it would leave the client
// waiting out its timeout (20 ms at least) with nothing to send, as the
// in-process dump at 20 % loss did about once per hundred messages.
const listRepeat = 2 * time.Millisecond

// flushAcksRepeating is flushAcks for the session's read loop at now: a
// list it sends goes again after listRepeat unless data comes first.
// (Lingering for a FINISHED sends no repeats: its reads must not wake
// for them.)
func (c *session) flushAcksRepeating(now time.Time) {
	if c.lists != nil && len(c.acks) > 0 {
		c.lists.repeatAt = now.Add(listRepeat)
		c.setDeadline(c.lists.repeatAt)
	}
	c.flushAcks()
}

// repeatList sends the last list again if it is due at now.
func (c *session) repeatList(now time.Time) {
	l := c.lists
	if l == nil || l.repeatAt.IsZero() || now.Before(l.repeatAt) {
		return
	}
	l.repeatAt = time.Time{}
	c.send(l.buf[:l.sent])
}

// listFresh is the most fresh seqnos a list carries: the rest of it
// repeats the two lists before, so each seqno goes in three lists and is
// lost only with all three (at 20 % loss 0.8 % of them, against 4 % when
// a list repeated only the one before: each such loss costs the client a
// timeout).
const listFresh = wire.MaxAckList / 3

// sendLists sends the queued ACKs as lists, listFresh at most in each.
// Where a batch has one ACK and nothing to repeat, the list would be a
// 4-byte ACK with a header: it goes as that ACK.
func (c *session) sendLists() {
	l := c.lists
	for fresh := c.acks; len(fresh) > 0; {
		f := fresh[:min(len(fresh), listFresh*wire.AckSize)]
		fresh = fresh[len(f):]
		if len(f) == wire.AckSize && l.nPrev == 0 {
			l.sent = copy(l.buf[:], f)
			c.send(f)
		} else if n, err := wire.PutAckList(l.buf[:], f, l.prev[:l.nPrev]); err == nil {
			l.sent = n
			c.send(l.buf[:n])
		} else {
			c.s.logf(LevelError, "ACK list: %s", err)
			return
		}
		// Next time: f, then the last list's (the one before drops out).
		copy(l.prev[len(f):], l.prev[:l.nLast])
		copy(l.prev[:], f)
		l.nPrev, l.nLast = len(f)+l.nLast, len(f)
	}
}

// sizeRecvBuffer makes the socket hold the server's window of datagrams
// of n bytes. It runs for every data datagram: only a larger one than
// any before costs more than a comparison.
func (c *session) sizeRecvBuffer(n int) {
	if n <= c.rcvFor {
		return
	}
	c.rcvFor = n
	want := min(c.s.cfg.Window*truesize(n), 256<<20)
	if want <= c.rcvBuf {
		return
	}
	c.rcvBuf = want
	s := c.s
	if bc, ok := c.conn.(transport.KernelBuffer); ok {
		got, forced, err := bc.SizeReadBuffer(want)
		s.rcvbufOnce.Do(func() {
			how := "SO_RCVBUFFORCE"
			if !forced {
				how = "SO_RCVBUF (capped by net.core.rmem_max: not root)"
			}
			s.logf(LevelInfo, "Session receive buffers sized with %s for a window of %d", how, s.cfg.Window)
		})
		// The kernel doubles what it is asked for.
		if err == nil && got >= want {
			return
		}
	} else if err := c.conn.SetReadBuffer(want); err == nil {
		return
	}
	s.logf(LevelWarning, "May drop packets from %s due to small receive buffer", c.ip)
}
