// Package client is the panic-time netdump client: it sends a dump body
// and a kernel dump header to a netdumpd over a debugnet endpoint with
// FreeBSD's session (netdump-protocol.md §2): HERALD, adoption of the
// server's port, VMCORE, KDH, FINISHED, sequence numbers from 1.
//
// Unlike FreeBSD's stop-and-wait per 64 KiB batch it keeps a window of
// messages in flight, paced, and retransmits only what is missing (the
// batch mode stays selectable, for comparison). The window follows the
// queue the client sees building, not loss: FreeBSD's servers acknowledge
// every message by its seqno, tamadump's in a list per batch it reads (the
// HERALD asks for that; each seqno goes in two lists), so each fresh
// acknowledgement is an RTT sample, and the RTT of a round against the smallest of the dump tells how long
// messages wait in a queue on the way. A loss with no such queue, or at
// the link's usual rate, is random (a lossy link) and costs a
// retransmission, not rate; a burst of losses with a queue is congestion
// and halves the window. A message is resent once one sent after it is
// acknowledged; the last ones of a dump, with nothing after them, are
// probed when no ACK comes for twice the path's RTT, instead of waiting
// out their timeouts. All-zero chunks are not sent but
// declared with a zero-length VMCORE whose aux2 is the run length, which
// tamadump's server records and FreeBSD's ignores (the file has a hole
// there either way). After New, a dump allocates nothing.
package client

import (
	"errors"
	"fmt"
	"io"
	"net/netip"
	"time"

	"github.com/tamadump/tamadump/debugnet"
	"github.com/tamadump/tamadump/netdump/ekcd"
	"github.com/tamadump/tamadump/netdump/wire"
	"github.com/tamadump/tamadump/phases"
)

// Defaults.
const (
	DefaultWindow = 64
	// DefaultMaxWindow bounds the window's growth.
	DefaultMaxWindow = 256
	// minWindow is the smallest the window shrinks to after losses.
	minWindow = 8
	// BatchBytes is FreeBSD's nd_buf: one stop-and-wait batch.
	BatchBytes = 64 * 1024
	// minRTO bounds the adaptive retransmission timeout from below: a
	// server acknowledges as it receives, before writing.
	minRTO = 20 * time.Millisecond
	// firstRTO is the HERALD's timeout: a server answers it at once, and
	// a lost one should not cost the second FreeBSD waits.
	firstRTO = 250 * time.Millisecond
	// finishRTO bounds FINISHED's timeout from below: a server answers it
	// once the dump is on disk (netdumpd fsyncs; tamadump's netdumpd also
	// completes the SHA-256 and the info file, about 165 ms for 64 MiB),
	// so resending it sooner only adds datagrams.
	finishRTO = 500 * time.Millisecond
	// The window's targets, in time spent queueing on the path (an RTT
	// less the path's smallest): a round whose smallest RTT queued more
	// than half the path's RTT or queueHigh, whichever is longer, shrinks
	// it; less than a quarter or queueLow lets it grow; a burst of losses
	// while the recent RTT queued at least that is congestion. The floors
	// are above the jitter of a polled host.
	queueLow  = time.Millisecond
	queueHigh = 2 * time.Millisecond
	// lossMargin is how many more messages than twice the usual share a
	// round must lose to lose them in a burst.
	lossMargin = 2
	// spanFactor × MaxWindow is the seqno span the client tracks, so a
	// message lost again and again does not stop the window behind it.
	spanFactor = 8
	// maxZeroRun is the largest run one message declares (aux2 is 32
	// bits), a whole number of pages.
	maxZeroRun = 1<<32 - wire.DataSize
	// minReorder is the least reordering allowed for: a message is lost
	// once one sent this long after it (or a quarter of the RTT, if
	// longer) has been acknowledged.
	minReorder = 20 * time.Microsecond
	// minProbe bounds the tail-loss probe's timeout (twice the path's
	// RTT) from below, above the jitter of a polled host; maxProbes is
	// how many probes go, one such timeout apart, before the messages'
	// own timeouts take over.
	minProbe  = 2 * time.Millisecond
	maxProbes = 3
)

// Config is the dumpon-style configuration.
type Config struct {
	Client, Server netip.Addr
	Gateway        netip.Addr // zero: none
	// Path is the relative directory sent in the HERALD.
	Path string
	// ServerPort and ClientPort default to 20023 and 20024.
	ServerPort, ClientPort uint16
	// Polls × PollDelay is the retransmission timeout (≈1 s); after
	// Retries+1 such timeouts without any progress the dump is given up.
	Polls      int
	PollDelay  time.Duration
	Retries    int
	ARPRetries int
	// Window is the number of messages in flight at the start (default
	// 64). While no queue builds on the path it grows, doubling every
	// round trip until one does and then by an eighth, up to MaxWindow
	// (default 256, at least Window), so the link stays full however long
	// its round trip; a queue makes it shrink, and a loss while one is
	// there halves it. Random loss leaves it alone. MaxWindow = Window
	// keeps it fixed.
	Window    int
	MaxWindow int
	// Batch selects FreeBSD's scheme: send 64 KiB, wait until all of it
	// is acknowledged, retransmit the rest after a full timeout.
	Batch bool
	// SendZeros turns zero-chunk elision off.
	SendZeros bool
	// SingleAcks asks for one ACK per message, as FreeBSD's client does.
	// By default the HERALD asks for ACK lists (wire.AckLists), which
	// tamadump's netdumpd sends, one per batch it reads, and FreeBSD's
	// ignores.
	SingleAcks bool
	// Encrypt, prepared before the crash, encrypts the dump as FreeBSD's
	// EKCD does; zero pages are then sent (encrypted) unless
	// ElideEncrypted, which declares them in clear.
	Encrypt        *ekcd.Encryptor
	ElideEncrypted bool
	// BusAddr, if set, is where a NIC can read the dump body's byte at
	// off in place, for the whole Chunk there (false where it cannot).
	// Through a NIC that gathers (debugnet.Gatherer) the client then
	// sends that data without copying or reading it. Not with Encrypt.
	BusAddr func(off int64) (uint64, bool)
	// Clock, Idle and Console: see debugnet.Config.
	Clock   func() int64
	Idle    func()
	Console io.Writer
}

// Body is the dump: Size bytes read through views. elfcore.Core is one.
type Body interface {
	Size() int64
	// Chunk returns a view of at most max bytes at off (shorter at region
	// boundaries); empty at or beyond Size.
	Chunk(off int64, max int) []byte
}

// Errors a dump ends with (after a console message).
var (
	ErrNoServer    = errors.New("netdump: failed to contact netdump server")
	ErrTimeout     = errors.New("netdump: server stopped acknowledging; dump abandoned")
	ErrNotFinished = errors.New("netdump: failed to close the transaction")
	ErrBody        = errors.New("netdump: dump body ended early")
)

// Stats describe the last dump.
type Stats struct {
	Messages    uint64 // distinct messages
	Sent        uint64 // datagrams transmitted, retransmissions included
	Retransmits uint64
	Early       uint64 // retransmissions prompted by ACKs of later messages
	Timeouts    uint64 // retransmissions prompted by a timeout
	Probes      uint64 // retransmissions as tail-loss probes
	// Spurious counts retransmitted messages acknowledged twice: the
	// server had an earlier copy (or the link duplicated an ACK).
	Spurious uint64
	Refused  uint64 // datagrams the NIC refused (ring full), resent at once
	// AckDatagrams counts the ACKs and ACK lists received, Repeated the
	// messages a list's repeat acknowledged after their own ACK was lost.
	AckDatagrams, Repeated uint64
	Losses                 uint64 // losses taken for congestion (each halved the window)
	Window                 uint32 // the window at the end
	PeakWindow             uint32 // the largest it was
	MinRTT                 time.Duration
	SRTT                   time.Duration // the smoothed RTT at the end of Body
	Bytes                  uint64        // VMCORE payload bytes sent
	ZeroBytes              uint64        // VMCORE bytes declared zero instead of sent
	Elapsed                time.Duration
	// Body is from the first VMCORE message to the acknowledgement of the
	// KDH: the transfer alone, without ARP, the HERALD or FINISHED.
	Body time.Duration
	// Tail is the end of Body after the KDH was sent: nothing new is
	// left to send, only the last losses to repair.
	Tail time.Duration
}

// slot is one message in flight.
type slot struct {
	h      wire.Header
	sentAt int64 // last transmission
	rto    int64 // current timeout for this message
	due    bool  // presumed lost: resend at the next wait
	tries  int
	acked  bool
	probe  bool // sent as a tail-loss probe
}

// Client runs dumps. It is not safe for concurrent use.
type Client struct {
	cfg     Config
	conn    *debugnet.Conn
	line    *debugnet.Line
	payload int // message payload per datagram
	slots   []slot
	base    uint32 // oldest unacknowledged seqno
	next    uint32 // next seqno to assign
	// The window: up to cwnd messages in flight (sent, not acknowledged,
	// not presumed lost), sent no faster than pace ns apart.
	cwnd, inflight uint32
	pace, paceAt   int64
	// A round ends when a message sent after it began is acknowledged
	// (roundEnd): then the window is set from the round's smallest RTT
	// (roundMin: a standing queue) and the recent RTT (an average, which
	// a queue filling up shows) against the path's (baseRTT, the smallest
	// of the dump), the share of its messages lost against the usual share
	// (lossAvg, in 1/1024), and whether the window was what held sending
	// back (limited).
	roundEnd              uint32
	roundMin, recent      int64
	baseRTT               int64
	roundLost, roundAcked uint32
	lossAvg               int64
	limited, slowStart    bool
	// Loss detection: the sending time of the latest message known to
	// have arrived, whether it moved since the window was last looked
	// over (rescan), when a timeout is next due (scanAt), and how many
	// lost messages wait for room.
	rackSentAt, scanAt int64
	rescan             bool
	waiting            int
	// probes: tail-loss probes sent since something new was acknowledged.
	probes  int
	port    uint16 // server port, adopted from the HERALD's ACK
	adopted bool
	// Adaptive retransmission timeout (RFC 6298 style), in ns.
	srtt, rttvar int64
	progress     int64 // last time an ACK acknowledged something new
	tailAt       int64 // when the KDH was first sent; zero outside the tail
	kdh          [wire.KDHSize]byte
	path         [wire.MaxHeraldPath]byte
	body         Body
	stats        Stats
	enc          encryption
	ph           phases.Counters
}

// New prepares a client on nic; it allocates everything a dump needs.
func New(nic debugnet.NIC, cfg Config) (*Client, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	c := &Client{cfg: cfg}
	conn, err := debugnet.New(nic, debugnet.Config{
		Client: cfg.Client, Server: cfg.Server, Gateway: cfg.Gateway,
		ClientPort: cfg.ClientPort, Polls: cfg.Polls, PollDelay: cfg.PollDelay,
		ARPRetries: cfg.ARPRetries, Clock: cfg.Clock, Idle: cfg.Idle, Console: cfg.Console,
	}, c.ack)
	if err != nil {
		return nil, err
	}
	c.conn = conn
	conn.SetPhases(&c.ph)
	c.line = conn.Line()
	c.refit()
	if c.payload < wire.KDHSize {
		return nil, fmt.Errorf("netdump: MTU %d too small for the 512-byte KDH", nic.MTU())
	}
	n := spanFactor * cfg.MaxWindow
	if cfg.Batch {
		n = (BatchBytes + c.payload - 1) / c.payload
	}
	c.slots = make([]slot, n)
	c.setupEncryption()
	return c, nil
}

// Retarget changes the addresses and path for the next dump without
// allocating (the path must fit MaxHeraldPath), for DDB's netdump command
// after a panic. Ports, timeouts and window stay.
func (c *Client) Retarget(client, server, gateway netip.Addr, path string) error {
	cfg := c.cfg
	cfg.Client, cfg.Server, cfg.Gateway, cfg.Path = client, server, gateway, path
	if err := cfg.Validate(); err != nil {
		return err
	}
	if err := c.conn.SetAddrs(client, server, gateway); err != nil {
		return err
	}
	c.cfg = cfg
	c.refit()
	return nil
}

// Config is the configuration in use, defaults filled in.
func (c *Client) Config() Config { return c.cfg }

// Stats reports on the last dump.
func (c *Client) Stats() Stats { return c.stats }

// PayloadSize is the VMCORE bytes per datagram (MTU − 52).
func (c *Client) PayloadSize() int { return c.payload }

// Dump sends body and then kdh (its dumplength and parity are set here
// from body). memMB is the machine's memory for the progress line. Dump
// does not allocate.
func (c *Client) Dump(body Body, kdh *wire.KernelDumpHeader, memMB uint64) error {
	start := c.conn.Now()
	c.ph.Start()
	c.stats = Stats{}
	body, err := c.prepareEncryption(body, kdh)
	if err != nil {
		return err
	}
	c.body = body
	c.base, c.next, c.port, c.adopted = 1, 1, c.cfg.ServerPort, false
	c.cwnd, c.inflight, c.pace, c.paceAt = uint32(c.cfg.Window), 0, 0, 0
	if c.cfg.Batch {
		c.cwnd = uint32(len(c.slots))
	}
	c.stats.PeakWindow = c.cwnd
	c.roundEnd, c.roundMin, c.recent, c.baseRTT = 1, 0, 0, 0
	c.rackSentAt, c.scanAt, c.rescan, c.waiting, c.probes = 0, 0, false, 0, 0
	c.roundLost, c.roundAcked, c.lossAvg, c.limited, c.slowStart = 0, 0, 0, false, true
	c.srtt, c.rttvar, c.tailAt = 0, 0, 0
	defer func() {
		c.ph.Stop()
		c.stats.Elapsed = time.Duration(c.conn.Now() - start)
		c.printPhases()
		c.stats.Window = c.cwnd
		c.stats.MinRTT = time.Duration(c.baseRTT)
		c.body = nil
	}()

	kdh.DumpLength = uint64(body.Size())
	if kdh.DumpExtent == 0 {
		kdh.DumpExtent = kdh.DumpLength
	}
	if _, err := kdh.Put(c.kdh[:]); err != nil {
		return err
	}
	if err := c.conn.Connect(); err != nil {
		c.line.S("netdump: failed to contact netdump server (no ").S(resolution(c.conn)).S(" from ").IP(c.cfg.Server)
		if c.cfg.Gateway.IsValid() {
			c.line.S(" or gateway ").IP(c.cfg.Gateway)
		}
		c.line.S(")\r\n").Flush()
		return ErrNoServer
	}
	// The HERALD goes alone: later messages go to the port its ACK comes from.
	h := wire.Header{Type: wire.Herald, Len: uint32(c.heraldLen()), Aux2: wire.AckLists}
	if c.cfg.SingleAcks {
		h.Aux2 = 0
	}
	if err := c.exchange(h); err != nil {
		c.line.S("netdump: failed to contact netdump server (HERALD to ").IP(c.cfg.Server).
			S(" not acknowledged)\r\n").Flush()
		return ErrNoServer
	}
	c.line.S("netdumping to ").IP(c.cfg.Server).S(" (").MAC(c.conn.PeerMAC()).S(")\r\n").Flush()
	if err := c.sendKey(); err != nil {
		return err
	}
	if err := c.sendBody(memMB); err != nil {
		return err
	}
	if err := c.exchange(wire.Header{Type: wire.Finished}); err != nil {
		c.line.S("netdump: failed to close the transaction\r\n").Flush()
		return ErrNotFinished
	}
	c.line.S("netdump finished.\r\n").Flush()
	return nil
}

func (c *Client) heraldLen() int {
	if c.cfg.Path == "" {
		return 0
	}
	n := copy(c.path[:], c.cfg.Path)
	c.path[n] = 0
	return n + 1
}

// exchange sends one message and waits for its ACK, with the window
// machinery (so HERALD and FINISHED retry as data does).
func (c *Client) exchange(h wire.Header) error {
	if err := c.push(h); err != nil {
		return err
	}
	return c.drain()
}

// sendBody streams the VMCORE messages and the KDH through the window.
func (c *Client) sendBody(memMB uint64) error {
	start := c.conn.Now()
	size := c.body.Size()
	c.line.S("Dumping ").U(uint64(size >> 20)).S(" out of ").U(memMB).S(" MB:").Flush()
	const page = wire.DataSize
	var off int64
	nextPct := int64(10)
	knownZero := int64(-1) // a page found zero while cutting data short
	// zeroPage reports whether the page at p (page-aligned) is elided:
	// all zero, and not the last page, which is always sent so that the
	// file gets its full length.
	zeroPage := func(p int64) bool {
		return c.elides() && p+page < size && (p == knownZero || c.zeroPrefix(p, page) == page)
	}
	for off < size {
		if off%page == 0 && zeroPage(off) {
			// A run of whole zero pages, declared in one message.
			room := min(size-1-off, maxZeroRun) / page * page
			z := page + c.zeroPrefix(off+page, room-page)/page*page
			if err := c.push(wire.Header{Type: wire.VMCore, Offset: uint64(off), Aux2: uint32(z)}); err != nil {
				return err
			}
			if err := c.skipEncrypted(z); err != nil {
				return err
			}
			c.stats.ZeroBytes += uint64(z)
			off += z
		} else {
			// Data up to a full datagram, cut short where a zero page
			// starts, so that a lone page of data costs no more than
			// its own bytes.
			n := min(int64(c.payload), size-off)
			for b := (off/page + 1) * page; b < off+n; b += page {
				if zeroPage(b) {
					n, knownZero = b-off, b
					break
				}
			}
			if err := c.push(wire.Header{Type: wire.VMCore, Offset: uint64(off), Len: uint32(n)}); err != nil {
				return err
			}
			c.stats.Bytes += uint64(n)
			off += n
		}
		for size > 0 && off*100 >= nextPct*size && nextPct <= 100 {
			c.line.S("..").U(uint64(nextPct)).S("%").Flush()
			nextPct += 10
		}
	}
	c.line.S("\r\n").Flush()
	if err := c.push(wire.Header{Type: wire.KDH, Len: wire.KDHSize}); err != nil {
		return err
	}
	err := c.drain()
	c.stats.Body = time.Duration(c.conn.Now() - start)
	c.stats.SRTT = time.Duration(c.srtt)
	return err
}

// zeroPage is a page of zeros, the plaintext of an elided page.
var zeroPage [wire.DataSize]byte

// zeroPrefix counts the zero bytes from off, up to max, page by page.
func (c *Client) zeroPrefix(off, max int64) int64 {
	defer c.ph.Enter(c.ph.Enter(phases.ZeroScan))
	var z int64
	for z < max {
		b := c.body.Chunk(off+z, int(min(max-z, 1<<20)))
		if len(b) == 0 {
			break
		}
		for len(b) > 0 {
			k := min(len(b), wire.DataSize)
			if !allZero(b[:k]) {
				return z
			}
			z += int64(k)
			b = b[k:]
		}
	}
	return z
}

// push assigns the next seqno to h, waiting for room in the window (or,
// in batch mode, for the whole batch when it is full) and for its turn
// under the pacing, and sends it.
func (c *Client) push(h wire.Header) error {
	if c.cfg.Batch && c.next-c.base == uint32(len(c.slots)) {
		if err := c.drain(); err != nil {
			return err
		}
	}
	if c.full(1) {
		// Full: wait for a quarter of the window to free up, so a poll
		// (an expensive register read on some NICs) serves several sends.
		c.limited = true
		for c.full(max(1, c.cwnd/4)) {
			if err := c.wait(); err != nil {
				return err
			}
		}
	}
	for c.pace > 0 && c.conn.Now() < c.paceAt {
		if err := c.wait(); err != nil {
			return err
		}
	}
	h.Seqno = c.next
	s := &c.slots[c.next%uint32(len(c.slots))]
	*s = slot{h: h, rto: c.rto()}
	if h.Type == wire.Finished {
		s.rto = max(s.rto, min(int64(finishRTO), int64(c.conn.Timeout())))
	}
	if c.next == c.base {
		c.progress = c.conn.Now() // the silence clock starts with the first message in flight
	}
	if h.Type == wire.KDH {
		c.tailAt = c.conn.Now()
	}
	c.next++
	c.stats.Messages++
	c.inflight++
	err := c.send(s)
	c.scanAt = min(c.scanAt, s.sentAt+s.rto)
	return err
}

// send transmits s; a HERALD or FINISHED goes twice at once (not in batch
// mode): their timeouts are long (no RTT is known yet; the server answers
// once the dump is on disk), and a server takes the copy as a
// retransmission (FreeBSD's and tamadump's answer a HERALD again until
// data comes, tamadump's a FINISHED again once it has finished). The two
// copies are one try: either's ACK times the round trip.
func (c *Client) send(s *slot) error {
	err := c.transmit(s)
	if err != nil || s.due || c.cfg.Batch || s.h.Type != wire.Herald && s.h.Type != wire.Finished {
		return err
	}
	err = c.transmit(s)
	s.tries--
	return err
}

// full reports whether the window lacks room for k more messages.
func (c *Client) full(k uint32) bool {
	if c.cfg.Batch {
		return false
	}
	return c.inflight+k > c.cwnd || c.next-c.base+k > uint32(len(c.slots))
}

// drain waits until everything in flight is acknowledged.
func (c *Client) drain() error {
	for c.base != c.next {
		if err := c.wait(); err != nil {
			return err
		}
	}
	if c.tailAt != 0 {
		c.stats.Tail = time.Duration(c.conn.Now() - c.tailAt)
		c.tailAt = 0
	}
	return nil
}

// wait polls once, retransmits what timed out, and fails after Retries+1
// timeouts without progress.
func (c *Client) wait() error {
	defer c.ph.Enter(c.ph.Enter(phases.Wait))
	if c.conn.PollOnce() == 0 && c.cfg.Idle != nil {
		c.cfg.Idle()
	}
	now := c.conn.Now()
	timeout := int64(c.conn.Timeout())
	if now-c.progress > timeout*int64(c.cfg.Retries+1) {
		c.line.S("\r\nnetdump: no ACK from ").IP(c.cfg.Server).S(" for ").
			U(uint64((now - c.progress) / int64(time.Millisecond))).S(" ms; giving up\r\n").Flush()
		return ErrTimeout
	}
	// The window is looked over only when something may have changed: an
	// ACK of a later message, a timeout, room for lost messages waiting.
	room := c.waiting > 0 && c.inflight < c.cwnd && (c.pace == 0 || now >= c.paceAt)
	if !c.rescan && !room && now < c.scanAt {
		return nil
	}
	c.rescan, c.waiting, c.scanAt = false, 0, now+timeout
	reorder := max(c.baseRTT/4, int64(minReorder))
	// A message's timeout is the one it was sent with (backed off, or
	// FINISHED's) or the current estimate, whichever is longer: the RTT
	// may have grown since it went out.
	rto := c.rto()
	retransmitted := false
	var newest *slot // the latest sent of those in flight
	for seq := c.base; seq != c.next; seq++ {
		s := &c.slots[seq%uint32(len(c.slots))]
		if s.acked {
			continue
		}
		if !s.due {
			switch {
			case now-s.sentAt >= max(s.rto, rto):
				// Timed out: lost. Its next copy waits longer only if
				// nothing at all was acknowledged meanwhile (the server
				// may be slow); ACKs of others mean it was merely lost.
				if c.progress < s.sentAt {
					s.rto = min(2*max(s.rto, rto), timeout)
				}
				c.stats.Timeouts++
			case !c.cfg.Batch && s.sentAt+reorder < c.rackSentAt:
				// A message sent after it (by more than reordering
				// explains) was acknowledged: lost, resent now rather
				// than after a timeout.
				c.stats.Early++
			default:
				c.scanAt = min(c.scanAt, s.sentAt+max(s.rto, rto))
				if newest == nil || s.sentAt > newest.sentAt {
					newest = s
				}
				continue
			}
			s.due = true
			c.inflight--
			c.roundLost++
		}
		// Lost messages go again as the window and the pacing allow: a
		// burst of them into a full queue would be lost again.
		if c.inflight >= c.cwnd || c.pace > 0 && now < c.paceAt {
			c.waiting++
			continue
		}
		if c.cfg.Batch && !retransmitted {
			c.line.S(". ").Flush() // FreeBSD marks each retransmission round
		}
		retransmitted = true
		if err := c.retransmit(s); err != nil {
			return err
		}
		now = c.conn.Now()
		c.scanAt = min(c.scanAt, now+max(s.rto, rto))
		newest = s
	}
	if newest == nil {
		return nil
	}
	return c.probe(newest, now, max(newest.rto, rto))
}

// probe is the tail-loss probe: in the tail (the KDH sent, nothing new
// left), when nothing has been acknowledged for twice the path's RTT
// since the latest message in flight went out, the latest is sent again
// (up to maxProbes times until something new is acknowledged). Its ACK
// shows, by sending time, what else was lost, where otherwise the last
// messages of a dump (nothing sent after them) and retransmissions lost
// again would wait out their timeouts. The path's RTT, not the smoothed
// one, which has the queue the window builds in it: ACKs come in sending
// order and keep coming while that queue drains, so a silence longer than
// the bare round trip means what is still missing was lost. Not before
// the tail: there new messages' ACKs show losses, and a silence with the
// window full is a queue that overflowed, whose timeouts slow the sending
// down (probing there lost three times the frames at a bottleneck).
func (c *Client) probe(s *slot, now, rto int64) error {
	if c.tailAt == 0 || c.probes == maxProbes || c.cfg.Batch || c.baseRTT == 0 {
		return nil
	}
	pto := max(2*c.baseRTT, int64(minProbe))
	at := max(c.progress, s.sentAt) + pto
	if at >= s.sentAt+rto {
		return nil // its timeout comes first
	}
	if now < at {
		c.scanAt = min(c.scanAt, at)
		return nil
	}
	c.probes++
	s.probe = true
	c.stats.Probes++
	c.stats.Retransmits++
	err := c.send(s)
	c.scanAt = min(c.scanAt, s.sentAt+pto)
	return err
}

func (c *Client) retransmit(s *slot) error {
	c.stats.Retransmits++
	s.due = false
	c.inflight++
	return c.send(s)
}

// rto is the timeout for a new message: the configured one in batch mode
// (as FreeBSD), firstRTO before any RTT was measured (the HERALD), else
// srtt + 4·rttvar, never more than the configured one.
func (c *Client) rto() int64 {
	max := int64(c.conn.Timeout())
	switch {
	case c.cfg.Batch:
		return max
	case c.srtt == 0:
		return min(max, int64(firstRTO))
	}
	return min(max, int64(minRTO)+c.srtt+4*c.rttvar)
}

// transmit builds s's datagram in the endpoint's frame and sends it.
func (c *Client) transmit(s *slot) error {
	p := c.conn.Payload()
	if err := s.h.Put(p); err != nil {
		return err
	}
	d := p[wire.HeaderSize : wire.HeaderSize+int(s.h.Len)]
	var tail []byte // the payload, copied as it is summed or sent in place
	var tailAddr uint64
	inPlace := false
	switch s.h.Type {
	case wire.Herald:
		copy(d, c.path[:])
	case wire.KDH:
		copy(d, c.kdh[:])
	case wire.VMCore:
		if b := c.body.Chunk(int64(s.h.Offset), len(d)); len(b) == len(d) && c.cfg.Encrypt == nil {
			tail = b
			if c.cfg.BusAddr != nil && c.conn.Gathers() {
				tailAddr, inPlace = c.cfg.BusAddr(int64(s.h.Offset))
			}
			break
		}
		prev := c.ph.Enter(phases.Copy)
		for off := 0; off < len(d); {
			b := c.body.Chunk(int64(s.h.Offset)+int64(off), len(d)-off)
			if len(b) == 0 {
				c.line.S("\r\nnetdump: dump body shorter than its size\r\n").Flush()
				return ErrBody
			}
			off += copy(d[off:], b)
		}
		c.ph.Enter(prev)
	}
	if err := c.encryptPayload(s, d); err != nil {
		return err
	}
	port := c.port
	if s.h.Type == wire.Herald {
		port = c.cfg.ServerPort
	}
	now := c.conn.Now()
	s.sentAt = now
	s.tries++
	c.stats.Sent++
	if c.pace > 0 {
		// Credit for at most two sends of idle time: pacing spreads a
		// window that opens at once.
		c.paceAt = max(c.paceAt, now-2*c.pace) + c.pace
	}
	var err error
	switch {
	case inPlace:
		err = c.conn.SendFrom(port, wire.HeaderSize, tail, tailAddr)
	case tail != nil:
		err = c.conn.SendCopy(port, wire.HeaderSize, tail)
	default:
		err = c.conn.Send(port, wire.HeaderSize+len(d))
	}
	if err != nil {
		// The NIC refused the frame (its ring stayed full): resend at
		// the next wait, after polling, rather than after a timeout.
		c.stats.Refused++
		s.due = true
		c.inflight--
	}
	return nil
}

// ack is the endpoint's handler for datagrams from the server: an ACK,
// or an ACK list.
func (c *Client) ack(srcPort uint16, payload []byte) {
	a, err := wire.ParseAcks(payload)
	if err != nil {
		return
	}
	c.stats.AckDatagrams++
	now := c.conn.Now() // one arrival: every ACK in it has the same time
	for i := range a.Len() {
		c.acked(srcPort, a.Seqno(i), i < a.Fresh(), now)
	}
}

// acked takes the ACK of seq. A repeated one (not fresh) was sent some
// time after the message arrived: it is no RTT sample, and a copy of an
// ACK already taken. now is when it arrived.
func (c *Client) acked(srcPort uint16, seq uint32, fresh bool, now int64) {
	s := &c.slots[seq%uint32(len(c.slots))]
	if seq-c.base >= c.next-c.base || s.acked {
		// Old, future, foreign, or acknowledged already; a sent message's
		// slot still holds it until a later seqno takes it.
		if fresh && s.acked && s.h.Seqno == seq && int32(c.next-seq) > 0 && s.tries > 1 {
			c.stats.Spurious++
		}
		return
	}
	if !fresh {
		c.stats.Repeated++
	}
	if s.h.Type == wire.Herald && !c.adopted {
		c.port, c.adopted = srcPort, true
	}
	s.acked = true
	c.roundAcked++
	if !s.due {
		c.inflight--
	} else if c.roundLost > 0 {
		c.roundLost-- // not lost after all: late, or reordered
	}
	c.progress, c.probes = now, 0
	if s.tries == 1 && fresh { // Karn: only unambiguous samples
		c.sample(now - s.sentAt)
	}
	if !c.cfg.Batch {
		// The latest transmission known to have arrived: what went out
		// well before it and is still missing was lost (wait resends
		// it, not the NIC's poll). Only first transmissions and probes:
		// an ACK of a resent message may be an earlier copy's (taking
		// it for the last copy's declares what went out meanwhile lost,
		// and their ACKs then do the same), but ACKs come in sending
		// order, so once the latest message sent, a probe, is
		// acknowledged by any copy, what is missing from before it was
		// lost.
		if (s.tries == 1 || s.probe) && s.sentAt > c.rackSentAt {
			c.rackSentAt, c.rescan = s.sentAt, true
		}
		if int32(seq-c.roundEnd) >= 0 {
			c.endRound()
		}
	}
	for c.base != c.next && c.slots[c.base%uint32(len(c.slots))].acked {
		c.base++
	}
}

// endRound sets the window for the next round from the queue this one
// saw and the messages it lost. A loss is congestion when it comes with a
// queue and with more of them than usual: a random loss rate is the same
// whatever the window, a queue that overflows loses in bursts.
func (c *Client) endRound() {
	c.roundEnd = c.next
	rtt, base := c.roundMin, c.baseRTT
	limited := c.limited
	n := int64(c.roundLost + c.roundAcked)
	share := int64(c.roundLost) * 1024 / max(1, n)
	burst := int64(c.roundLost) > 2*c.lossAvg*n/1024+lossMargin
	c.lossAvg += (share - c.lossAvg) / 8
	c.roundMin, c.roundLost, c.roundAcked, c.limited = 0, 0, 0, false
	if rtt == 0 || base == 0 {
		return // no sample this round: nothing learnt
	}
	queued := rtt - base
	low, high := max(base/4, int64(queueLow)), max(base/2, int64(queueHigh))
	lo := uint32(min(minWindow, c.cfg.Window))
	switch {
	case c.cfg.Window == c.cfg.MaxWindow: // fixed
	case burst && c.recent-base >= low:
		c.cwnd = max(c.cwnd/2, lo)
		c.slowStart = false
		c.stats.Losses++
	case queued > high:
		c.cwnd = max(c.cwnd-max(1, c.cwnd/8), lo)
		c.slowStart = false
	case queued < low && limited:
		if c.slowStart {
			c.cwnd *= 2
		} else {
			c.cwnd += max(1, c.cwnd/8)
		}
		c.cwnd = min(c.cwnd, uint32(c.cfg.MaxWindow))
		c.stats.PeakWindow = max(c.stats.PeakWindow, c.cwnd)
	}
	// Send at twice the rate the window sustains over the bare round
	// trip: enough never to hold the window back, little enough that a
	// window opening at once does not go out as one burst.
	c.pace = base / int64(2*c.cwnd)
}

func (c *Client) sample(rtt int64) {
	rtt = max(rtt, 1)
	if c.roundMin == 0 || rtt < c.roundMin {
		c.roundMin = rtt
	}
	if c.baseRTT == 0 || rtt < c.baseRTT {
		c.baseRTT = rtt
	}
	if c.recent == 0 {
		c.recent = rtt
	}
	c.recent += (rtt - c.recent) / 4
	if c.srtt == 0 {
		c.srtt, c.rttvar = rtt, rtt/2
		return
	}
	d := c.srtt - rtt
	if d < 0 {
		d = -d
	}
	c.rttvar += (d - c.rttvar) / 4
	c.srtt += (rtt - c.srtt) / 8
}
