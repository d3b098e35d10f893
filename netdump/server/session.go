package server

import (
	"bytes"
	"container/list"
	"errors"
	"fmt"
	"math"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/net/ipv4"
	"golang.org/x/sys/unix"
	"golang.org/x/time/rate"

	"github.com/tamadump/tamadump/netdump/transport"
	"github.com/tamadump/tamadump/netdump/wire"
)

const (
	// writeBack is VMCORE_BUFSZ: contiguous payloads are gathered into one
	// pwrite of up to this many bytes.
	writeBack = 128 << 10
	// dotEvery: netdumpd logs "." at seqnos divisible by this ("about
	// every 16 MB at MTU 1500").
	dotEvery = 16 << 20 / 1456
	// lingerBuf is enough for a FINISHED; longer datagrams are truncated
	// and then fail the size check, as they should.
	lingerBuf = 64
	// maxMissingListed caps the ranges named in "Missing ranges:" and
	// "Conflicting rewrites:".
	maxMissingListed = 16
	// maxKeySize bounds the EKCD key file: the kernel's blob is at most
	// 37 + 2048 bytes (KERNELDUMP_ENCKEY_MAX_SIZE) rounded up to the
	// block size.
	maxKeySize = 64 << 10
	// maxSpans bounds the separate ranges one dump may consist of (the
	// coverage costs about 40 bytes each). A dump of alternating data and
	// zero pages of 16 GiB has well under 2^21.
	maxSpans = 1 << 21
)

// coreFile is what a session needs of its vmcore file (*os.File); tests
// interpose on it.
type coreFile interface {
	WriteAt(p []byte, off int64) (int, error)
	ReadAt(p []byte, off int64) (int, error)
	Truncate(size int64) error
	Sync() error
	Close() error
}

// Why a session is stopped from outside.
type stopWhy int32

const (
	stopNone     stopWhy = iota
	stopClosed           // Server.Close, or a lingering session evicted
	stopTakeover         // the client's new HERALD after silence
	stopEvicted          // a half-open session dropped for MaxHalfOpen
)

// session is one client's dump: one state machine, run by its own
// goroutine. Other goroutines only use ack, heard, stop, dirty and
// syncCore, and the fields the Server guards with its mutex.
type session struct {
	s         *Server
	ip        netip.Addr
	herald    []byte // the HERALD's path
	heraldSeq uint32
	conn      ClientConn
	bconn     transport.BatchConn // conn, when it reads and writes in batches
	name      *nameEntry
	started   time.Time

	// Guarded by s.mu.
	elem      *list.Element // in s.halfOpen while no data came
	receiving bool          // counted in s.receiving

	lastHeard atomic.Int64 // unix nanoseconds of the last valid message
	why       atomic.Int32 // a stopWhy
	stopCh    chan struct{}
	stopOnce  sync.Once
	dirty     atomic.Bool // written since the last fdatasync

	host     string
	files    *dumpFiles
	core     coreFile
	name0    string // current vmcore base name (renamed by the KDH)
	key      *os.File
	infoHead string // "Dump from ..." and the header block
	limiter  *rate.Limiter
	deadline time.Time

	buf    []byte          // the read buffer until the first data; then rx
	single int             // the length of the datagram read into buf
	gro    bool            // reads may hold several datagrams (UDP_GRO)
	first  [1]ipv4.Message // reads into buf with GRO
	rx     rx
	growRx bool      // a datagram did not fit rx
	acks   []byte    // ACKs queued, sent after each batch
	lists  *ackLists // the client takes ACK lists
	rcvBuf int       // the receive buffer asked for
	rcvFor int       // the largest datagram it was sized for
	rbuf   []byte    // read-back scratch

	pieces [][2]uint64 // scratch: new parts of a message

	wb      []byte // write-back buffer holding [wbOff, wbOff+len(wb))
	wbuf    *wbuf  // the pipeline's buffer wb is
	wbOff   uint64
	wbSince time.Time
	size    int64 // vmcore file size

	cov       *spans
	conflicts *spans
	nConflict int
	dig       *digest
	received  uint64

	kdhSeen bool
	kdhSeq  uint32
	kdh     wire.KernelDumpHeader
	kdhOK   bool // kdh holds a full header
	kdhRaw  [wire.KDHSize]byte
	finSeq  uint32

	kdhConflict bool // a second, different header came
}

func (s *Server) newSession(ip, dst netip.Addr, seqno uint32, lists bool, herald []byte) *session {
	conn, err := s.cfg.Network.DialClient(dst, netip.AddrPortFrom(ip, s.cfg.AckPort))
	if err != nil {
		s.logf(LevelError, "netdump_cap_herald(): %s", strerror(err))
		return nil
	}
	c := &session{
		s:         s,
		ip:        ip,
		herald:    bytes.Clone(herald),
		heraldSeq: seqno,
		conn:      conn,
		name:      s.names.start(ip),
		started:   time.Now(),
		stopCh:    make(chan struct{}),
		acks:      make([]byte, 0, batchMax*wire.AckSize),
	}
	if lists {
		c.lists = &ackLists{}
	}
	c.bconn, _ = conn.(transport.BatchConn)
	if c.bconn != nil && c.bconn.GRO() {
		// A read may hold a run of datagrams from the first window on.
		c.gro, c.buf = true, make([]byte, groSlot)
		c.first[0] = ipv4.Message{Buffers: [][]byte{c.buf}, OOB: transport.GROOOB()}
	} else {
		c.buf = make([]byte, maxDatagram)
	}
	// The first window arrives before any datagram is read: sized for
	// datagrams of a 9000-byte MTU until one says more. (A limit the
	// kernel charges only for datagrams queued.)
	c.sizeRecvBuffer(slotSize)
	c.lastHeard.Store(c.started.UnixNano())
	return c
}

func (c *session) heard() time.Time { return time.Unix(0, c.lastHeard.Load()) }

func (c *session) corePath() string { return c.files.path(c.name0) }
func (c *session) infoPath() string { return c.files.path(c.files.infoBase()) }

// ack answers seqno; it may be called from any goroutine (a retransmitted
// HERALD is answered by the HERALD loop).
func (c *session) ack(seqno uint32) {
	b := make([]byte, wire.AckSize)
	wire.PutAck(b, seqno)
	c.send(b)
}

func (c *session) send(b []byte) {
	// Lost ACKs are harmless: the client retransmits.
	if _, err := c.conn.Write(b); err != nil && c.why.Load() == int32(stopNone) {
		c.s.logf(LevelError, "send(): %s", strerror(err))
	}
}

// stop makes the session end for why; any goroutine may call it.
func (c *session) stop(why stopWhy) {
	c.stopOnce.Do(func() {
		c.why.Store(int32(why))
		close(c.stopCh)
		c.conn.Close()
	})
}

func (c *session) stopping() bool { return c.why.Load() != int32(stopNone) }

// run serves the session until it ends.
func (c *session) run() {
	if c.serve() {
		c.linger()
	}
	c.conn.Close()
}

// serve handles datagrams until the dump ends; it reports whether the dump
// completed.
func (c *session) serve() bool {
	c.setDeadline(c.nextDeadline(time.Now()))
	for {
		if c.stopping() {
			c.stopped()
			return false
		}
		n, err := c.read()
		now := time.Now()
		if err != nil {
			switch {
			case c.stopping():
				c.stopped()
				return false
			case isTimeout(err):
				if c.files == nil && now.Sub(c.started) >= c.s.cfg.HalfOpenTimeout {
					c.s.limitHit(limitIdle, "Dropping the session of %s: no data %v after its HERALD", c.ip, c.s.cfg.HalfOpenTimeout)
					c.end(timeout, "")
					return false
				}
				if c.files != nil && now.Sub(c.heard()) > c.s.cfg.Timeout {
					c.timedOut()
					return false
				}
				if c.wbDue(now) && !c.flush() {
					return false
				}
				c.repeatList(now)
				c.deadline = time.Time{}
				c.setDeadline(c.nextDeadline(now))
				continue
			case errors.Is(err, syscall.ECONNREFUSED):
				// An ICMP port unreachable for an earlier ACK: the
				// client's port was closed for a moment. Not fatal.
				continue
			default:
				c.s.logf(LevelError, "recv(): %s", strerror(err))
			}
			c.timedOut()
			return false
		}
		for i := range n {
			b, seg, whole := c.datagram(i)
			if !whole {
				c.s.metrics.dropped.WithLabelValues(dropCut).Inc()
				continue
			}
			if seg == 0 {
				seg = len(b)
			}
			for {
				k := min(seg, len(b))
				if done, ok := c.message(b[:k], now); done {
					c.flushAcks()
					return ok
				}
				if b = b[k:]; len(b) == 0 {
					break
				}
			}
		}
		c.flushAcksRepeating(now)
		if c.dig != nil && !c.writeOK() {
			return false
		}
		if c.growRx {
			c.growRx = false
			c.setRx(maxDatagram)
		}
		if c.wbDue(now) && !c.flush() {
			return false
		}
		if len(c.wb) > 0 {
			c.setDeadline(c.wbSince.Add(c.s.cfg.FlushAfter))
		}
	}
}

// nextDeadline is when the session must look at the clock again: the
// idle check, the half-open timeout, the write-back buffer's age, the
// last ACK list's repeat.
func (c *session) nextDeadline(now time.Time) time.Time {
	t := now.Add(c.s.cfg.TPass)
	if c.files == nil {
		t = c.started.Add(c.s.cfg.HalfOpenTimeout)
	}
	if len(c.wb) > 0 {
		t = minTime(t, c.wbSince.Add(c.s.cfg.FlushAfter))
	}
	if c.lists != nil && !c.lists.repeatAt.IsZero() {
		t = minTime(t, c.lists.repeatAt)
	}
	return t
}

// setDeadline moves the read deadline earlier (a system call only when
// it changes).
func (c *session) setDeadline(t time.Time) {
	if c.deadline.IsZero() || t.Before(c.deadline) {
		c.deadline = t
		c.conn.SetReadDeadline(t)
	}
}

func minTime(a, b time.Time) time.Time {
	if b.Before(a) {
		return b
	}
	return a
}

func isTimeout(err error) bool {
	var t interface{ Timeout() bool }
	return errors.As(err, &t) && t.Timeout()
}

// message handles one datagram; done reports the end of the dump and ok
// whether it completed. The work is bounded by the datagram's length.
func (c *session) message(b []byte, now time.Time) (done, ok bool) {
	m := c.s.metrics
	if len(b) < wire.HeaderSize {
		m.dropped.WithLabelValues(dropRunt).Inc()
		c.s.sayLimited(LevelError, dropRunt, "Ignoring runt packet from %s (got %d)", c.ip, len(b))
		return false, false
	}
	h, payload, err := wire.ParseMessage(b)
	switch {
	case err == wire.ErrType || err == nil && h.Type == wire.Herald:
		m.dropped.WithLabelValues(dropType).Inc()
		c.s.sayLimited(LevelError, dropType, "Received unexpected message type %d from %s", uint32(h.Type), c.ip)
		return false, false
	case err != nil:
		m.dropped.WithLabelValues(dropSize).Inc()
		c.s.sayLimited(LevelError, dropSize, "Bad packet size from %s", c.ip)
		return false, false
	}
	c.lastHeard.Store(now.UnixNano())
	if !c.pace(len(b), now) {
		c.stopped()
		return true, false
	}
	if c.files == nil && !c.begin() {
		return true, false
	}
	switch h.Type {
	case wire.VMCore:
		m.vmcorePkts.Inc()
		return !c.vmcore(h, payload), false
	case wire.KDH:
		m.otherPkts.Inc()
		return !c.kdhMsg(h, payload), false
	case wire.EKCDKey:
		m.otherPkts.Inc()
		return !c.keyMsg(h, payload), false
	case wire.Finished:
		m.otherPkts.Inc()
		return true, c.finish(h)
	}
	return false, false
}

// pace holds the datagram back while the client is over its byte rate:
// its socket buffer fills, its ACKs come later, and a stop-and-wait
// client slows down to the rate. It reports false when stopped while
// waiting.
func (c *session) pace(n int, now time.Time) bool {
	if c.s.cfg.Rate == Unlimited {
		return true
	}
	if c.limiter == nil {
		c.limiter = rate.NewLimiter(rate.Limit(c.s.cfg.Rate), int(max(c.s.cfg.Rate/8, 2*int64(len(c.buf)))))
	}
	d := c.limiter.ReserveN(now, n).DelayFrom(now)
	if d <= 0 {
		return true
	}
	c.s.limitHit(limitRate, "Client %s sends more than %d bytes/s: slowed down", c.ip, c.s.cfg.Rate)
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-c.stopCh:
		return false
	}
}

// begin turns a half-open session into a dump at its first data: within
// MaxSessions, once its host name is known, by creating its files.
func (c *session) begin() bool {
	s := c.s
	if !s.promote(c) {
		if !c.stopping() {
			s.limitHit(limitSessions, "Dropping the session of %s: %d dumps in progress, the limit", c.ip, s.cfg.MaxSessions)
		}
		c.end(failed, "")
		return false
	}
	c.host = s.names.wait(c.name, c.ip, c.stopCh)
	c.infoHead = fmt.Sprintf("Dump from %s [%s]\n", c.host, c.ip)
	first := c.infoHead + statusInProgress + "\n"
	var err error
	if c.herald != nil {
		if c.files, err = s.openDumpFiles(string(c.herald), c.host, c.ip.String(), first); err != nil {
			s.logf(LevelWarning, "Can't create output files in path for client %s [%s], retrying with default", c.host, c.ip)
		}
	}
	if c.files == nil {
		if c.files, err = s.openDumpFiles(s.cfg.DefaultPath, c.host, c.ip.String(), first); err != nil {
			s.logf(LevelError, "Can't create output files for new client %s [%s]", c.host, c.ip)
			c.end(failed, "")
			return false
		}
	}
	if c.bconn != nil {
		c.setRx(slotSize)
	}
	c.core = c.files.core
	if s.cfg.wrapCore != nil {
		c.core = s.cfg.wrapCore(c.core)
	}
	c.name0 = c.files.coreBase()
	c.cov, c.conflicts = newSpans(), newSpans()
	// The write-back buffers come with the first data, so that idle
	// sessions (a HERALD flood) stay small.
	c.dig = newDigest(c.core, &c.dirty, s.metrics.zeroHash, s.metrics.readBack, c.stopping)
	if s.cfg.NoDigest {
		c.dig.fail("not computed (netdumpd -no-digest)")
	}
	s.logf(LevelInfo, "New dump from client %s [%s] (to %s)", c.host, c.ip, c.corePath())
	return true
}

// limit is the size the vmcore may reach.
func (c *session) limit() uint64 {
	l := c.s.cfg.MaxDumpSize
	if c.kdhOK {
		// Block padding may follow the header's length.
		l = min(l, max(c.kdh.DumpLength, c.kdh.DumpExtent)+64<<10)
	}
	return l
}

// vmcore stores dump bytes or records a zero run; false means the dump
// failed.
func (c *session) vmcore(h wire.Header, payload []byte) bool {
	if h.Seqno%dotEvery == 0 {
		c.s.logf(LevelInfo, ".")
	}
	n := uint64(len(payload))
	run, zero := h.ZeroRun()
	if zero {
		n = uint64(run)
	}
	if h.Offset > math.MaxInt64-n {
		c.writeError(h.Offset, syscall.EINVAL)
		return false
	}
	end := h.Offset + n
	if end > c.limit() {
		c.s.limitHit(limitDumpSize, "Client %s [%s] writes beyond %d bytes, the dump size limit", c.host, c.ip, c.limit())
		c.fail(fmt.Sprintf("Dump unsuccessful: data at offset %#x beyond the %d-byte limit", end-1, c.limit()))
		return false
	}
	if n == 0 {
		c.ackOwn(h.Seqno)
		return true
	}
	if c.cov.Len() >= maxSpans && !c.cov.overlaps(h.Offset, end) {
		c.s.limitHit(limitSpans, "Client %s [%s] sends its dump in more than %d separate pieces", c.host, c.ip, maxSpans)
		c.fail(fmt.Sprintf("Dump unsuccessful: more than %d separate pieces", maxSpans))
		return false
	}
	if zero {
		c.zeroRun(h.Offset, end)
	} else if !c.data(h.Offset, payload) {
		return false
	}
	// Like netdumpd, ACK once buffered; the buffer is written within
	// FlushAfter. A later write error ends the dump and the client never
	// gets its FINISHED acknowledged.
	c.ackOwn(h.Seqno)
	if !zero {
		c.sizeRecvBuffer(wire.HeaderSize + len(payload))
	}
	return true
}

// zeroRun records a declared run of zeros over [a, b). Nothing is
// written: the file keeps a hole there. A run over bytes already
// received is a conflict (their content is not read back: that would
// cost what the message claims), unless it repeats a run.
func (c *session) zeroRun(a, b uint64) {
	if r, ok := c.cov.at(a); ok && r.kind == zeroKind && r.end >= b {
		return // a retransmission
	}
	if c.cov.overlaps(a, b) {
		c.conflict(a, b)
		return
	}
	c.cov.add(a, b, zeroKind)
}

// data stores payload at off. Bytes already received are kept (the
// first arrival wins); a payload that differs from them is recorded as a
// conflict. The comparison reads back at most the payload's length.
func (c *session) data(off uint64, payload []byte) bool {
	end := off + uint64(len(payload))
	c.pieces = c.pieces[:0]
	if !c.cov.overlaps(off, end) {
		c.pieces = append(c.pieces, [2]uint64{off, end})
	} else {
		differs := false
		var err error
		c.cov.visit(off, end, func(a, b uint64, k kind) {
			p := payload[a-off : b-off]
			switch k {
			case gap:
				c.pieces = append(c.pieces, [2]uint64{a, b})
			case zeroKind:
				differs = differs || !allZero(p)
			case dataKind:
				if differs || err != nil {
					return
				}
				var was []byte
				if was, err = c.stored(a, len(p)); err == nil && !bytes.Equal(was, p) {
					differs = true
				}
			}
		})
		if err != nil {
			c.readError(off, err)
			return false
		}
		if differs {
			c.conflict(off, end)
		}
	}
	for _, p := range c.pieces {
		if !c.store(p[0], payload[p[0]-off:p[1]-off]) {
			return false
		}
		c.cov.add(p[0], p[1], dataKind)
		c.received += p[1] - p[0]
		c.dig.earn(int(p[1] - p[0]))
		c.s.metrics.bytes.Add(float64(p[1] - p[0]))
	}
	return true
}

func allZero(b []byte) bool {
	for len(b) > 0 {
		k := min(len(b), len(zeros))
		if !bytes.Equal(b[:k], zeros[:k]) {
			return false
		}
		b = b[k:]
	}
	return true
}

func (c *session) conflict(a, b uint64) {
	c.nConflict++
	c.conflicts.add(a, b, dataKind)
	c.s.metrics.conflicts.Inc()
	c.s.sayLimited(LevelWarning, "conflict", "Client %s [%s]: bytes %#x-%#x differ from those already received; the first kept", c.host, c.ip, a, b-1)
}

// store puts new bytes into the write-back buffer.
func (c *session) store(off uint64, p []byte) bool {
	if len(c.wb) > 0 && (c.wbOff+uint64(len(c.wb)) != off || len(c.wb)+len(p) > cap(c.wb)) {
		if !c.flush() {
			return false
		}
	}
	if c.wb == nil {
		c.wbuf = c.dig.buffer()
		c.wb = c.wbuf.b
	}
	if len(c.wb) == 0 {
		c.wbOff, c.wbSince = off, time.Now()
	}
	c.wb = append(c.wb, p...)
	return true
}

func (c *session) wbDue(now time.Time) bool {
	return len(c.wb) > 0 && now.Sub(c.wbSince) >= c.s.cfg.FlushAfter
}

// stored returns the bytes held at [off, off+n): from the write-back
// buffer, or read back from the file.
func (c *session) stored(off uint64, n int) ([]byte, error) {
	end := off + uint64(n)
	wbEnd := c.wbOff + uint64(len(c.wb))
	if len(c.wb) > 0 && off >= c.wbOff && end <= wbEnd {
		return c.wb[off-c.wbOff : end-c.wbOff], nil
	}
	if len(c.wb) > 0 && off < wbEnd && end > c.wbOff && !c.flush() {
		return nil, errors.New("write error")
	}
	// The writer may not have written it yet.
	c.dig.drainWrites()
	if len(c.rbuf) < n {
		c.rbuf = make([]byte, max(n, 64<<10))
	}
	b := c.rbuf[:n]
	k, err := c.core.ReadAt(b, int64(off))
	c.s.metrics.readBack.Add(float64(k))
	if k == n {
		return b, nil
	}
	if err == nil {
		err = syscall.EIO
	}
	return nil, err
}

// flush hands the write-back buffer to the writer, which writes it at
// once, and to the hasher, which hashes what became contiguous (the
// buffer's own bytes straight from it); false means the dump failed (a
// write failed).
func (c *session) flush() bool {
	if !c.writeOK() {
		return false
	}
	if len(c.wb) == 0 {
		return true
	}
	c.size = max(c.size, int64(c.wbOff)+int64(len(c.wb)))
	c.wbuf.b = c.wb
	c.dig.hand(c.wbuf, c.wbOff, c.cov)
	c.wb, c.wbuf = nil, nil
	return true
}

// writeOK reports whether every write so far succeeded; a failed one
// ends the dump.
func (c *session) writeOK() bool {
	off, err, failed := c.dig.writeErr()
	if failed {
		c.writeError(off, err)
	}
	return !failed
}

// syncCore fdatasyncs the vmcore; the syncer calls it.
func (c *session) syncCore() {
	if f := c.files; f != nil {
		if rc, err := f.core.SyscallConn(); err == nil {
			rc.Control(func(fd uintptr) { unix.Fdatasync(int(fd)) })
		}
	}
}

// kdhMsg records the kernel dump header; false means the dump failed.
func (c *session) kdhMsg(h wire.Header, payload []byte) bool {
	if c.kdhSeen && h.Seqno == c.kdhSeq {
		// A retransmission: processing it again would repeat the renames.
		c.ackOwn(h.Seqno)
		return true
	}
	c.kdhSeen, c.kdhSeq = true, h.Seqno
	c.s.logf(LevelInfo, "(KDH from %s [%s])", c.host, c.ip)
	if len(payload) < wire.KDHSize {
		c.ackOwn(h.Seqno)
		c.s.logf(LevelError, "Bad KDH from %s [%s]: packet too small", c.host, c.ip)
		c.infoHead += "Bad KDH: packet too small\n"
		c.writeInfo(statusInProgress, false)
		return true
	}
	var k wire.KernelDumpHeader
	wire.ParseKDH(payload, &k)
	if k.DumpLength > c.s.cfg.MaxDumpSize {
		c.s.limitHit(limitDumpSize, "Client %s [%s] announces %d bytes, beyond the dump size limit of %d", c.host, c.ip, k.DumpLength, c.s.cfg.MaxDumpSize)
		c.fail(fmt.Sprintf("Dump unsuccessful: the header's dump length %d exceeds the %d-byte limit", k.DumpLength, c.s.cfg.MaxDumpSize))
		return false
	}
	c.ackOwn(h.Seqno)
	if c.kdhOK {
		// Another header: the info keeps the first; a different one is
		// a conflicting rewrite.
		if !bytes.Equal(c.kdhRaw[:], payload[:wire.KDHSize]) {
			c.nConflict++
			c.kdhConflict = true
			c.s.metrics.conflicts.Inc()
		}
		return true
	}
	c.kdh, c.kdhOK = k, true
	copy(c.kdhRaw[:], payload)
	c.infoHead += kdhBlock(&k, wire.Parity(payload[:wire.KDHSize]) == 0)
	c.rename()
	if c.compressed() {
		// Block padding after the compressed stream confuses
		// decompressors.
		if !c.flush() {
			return false
		}
		c.truncate(int64(k.DumpLength))
	}
	c.writeInfo(statusInProgress, false)
	return true
}

func (c *session) compressed() bool {
	return c.kdhOK && (c.kdh.Compression == wire.CompressGzip || c.kdh.Compression == wire.CompressZstd)
}

// rename gives the vmcore the name the header calls for:
// vmcore_encrypted.* for encrypted dumps, .gz/.zst for compressed ones.
// It never replaces a file of that name.
func (c *session) rename() {
	name := c.files.coreBase()
	if c.kdh.DumpKeySize != 0 {
		name = fmt.Sprintf("vmcore_encrypted.%s.%d", c.host, c.files.index)
	}
	switch c.kdh.Compression {
	case wire.CompressGzip:
		name += ".gz"
	case wire.CompressZstd:
		name += ".zst"
	}
	if name == c.name0 {
		return
	}
	if err := renameNoReplace(c.files.dir, c.name0, name); err != nil {
		c.s.logf(LevelWarning, "Couldn't rename '%s' to '%s': %s", c.corePath(), c.files.path(name), strerror(err))
		return
	}
	c.name0 = name
}

// truncate gives the vmcore size bytes; what lay beyond is forgotten.
func (c *session) truncate(size int64) {
	if size == c.size {
		return
	}
	// The hasher may be reading what is cut.
	c.dig.drain()
	if err := c.core.Truncate(size); err != nil {
		c.s.logf(LevelError, "ftruncate(): %s", strerror(err))
		return
	}
	if size < c.size {
		c.cov.truncate(uint64(size))
		c.dig.truncated(uint64(size))
	}
	c.size = size
}

// keyMsg stores a piece of the encryption key blob; false means the dump
// failed.
func (c *session) keyMsg(h wire.Header, payload []byte) bool {
	if h.Offset > maxKeySize || uint64(len(payload)) > maxKeySize-h.Offset {
		c.s.limitHit(limitKeySize, "Client %s [%s] sends a key beyond %d bytes", c.host, c.ip, maxKeySize)
		c.fail(fmt.Sprintf("Dump unsuccessful: key data beyond %d bytes", maxKeySize))
		return false
	}
	if c.key == nil {
		f, err := createAt(c.files.dir, c.files.keyBase(), unix.O_WRONLY, 0400)
		if err != nil {
			c.s.logf(LevelError, "openat(%s): %s", c.files.path(c.files.keyBase()), strerror(err))
			return true
		}
		c.key = f
		c.s.logf(LevelInfo, "(EKCD key from %s [%s])", c.host, c.ip)
	}
	if _, err := c.key.WriteAt(payload, int64(h.Offset)); err != nil {
		c.s.logf(LevelError, "write(): %s", strerror(err))
		return true
	}
	c.ackOwn(h.Seqno)
	return true
}

// finish completes the dump; false means it failed.
func (c *session) finish(h wire.Header) bool {
	if !c.flush() {
		return false
	}
	c.dig.drainWrites()
	if !c.writeOK() {
		return false
	}
	// The file gets its full length even when it ends in a zero run;
	// a compressed one loses its block padding.
	want := c.cov.end()
	if c.kdhOK {
		if c.compressed() {
			want = c.kdh.DumpLength
		} else {
			want = max(want, c.kdh.DumpLength)
		}
	}
	c.truncate(int64(want))
	if err := c.core.Sync(); err != nil {
		c.s.logf(LevelError, "fsync(): %s", strerror(err))
	}
	c.dig.advance(c.cov, nil, true, want)
	c.dig.drain()
	c.finSeq = h.Seqno
	if !c.writeInfo(statusComplete, true) {
		return false
	}
	c.symlink("vmcore", c.name0)
	c.symlink("info", c.files.infoBase())
	c.s.logf(LevelInfo, "Completed dump from client %s [%s]", c.host, c.ip)
	c.ackOwn(h.Seqno)
	c.end(success, "")
	return true
}

// writeInfo replaces the info file: the head, then for a dump that
// ended what is missing and conflicting, and status last. false means
// it could not be written (the dump failed).
func (c *session) writeInfo(status string, sync bool) bool {
	var b strings.Builder
	b.WriteString(c.infoHead)
	if status != statusInProgress {
		fmt.Fprintf(&b, "Missing ranges: %s\n", c.missing())
		if c.nConflict > 0 {
			where := c.conflicts.describe(math.MaxUint64, false, maxMissingListed)
			if c.kdhConflict {
				where = "kernel dump header, " + where
			}
			fmt.Fprintf(&b, "Conflicting rewrites: %d (%s)\n", c.nConflict, strings.TrimSuffix(where, ", none"))
		}
	}
	if status == statusComplete {
		fmt.Fprintf(&b, "SHA256: %s\n", c.dig.sum())
	}
	b.WriteString(status + "\n")
	if err := writeFileAt(c.files.dir, c.files.infoBase(), b.String(), false, sync); err != nil {
		c.s.logf(LevelError, "Can't write %s: %s", c.infoPath(), strerror(err))
		if status == statusComplete {
			c.end(failed, "")
		}
		return false
	}
	return true
}

// missing lists the parts of the dump never received: of [0, dumplength)
// once the header is known. Without a header the end is unknown, which
// is said.
func (c *session) missing() string {
	if c.kdhOK {
		return c.cov.describe(c.kdh.DumpLength, true, maxMissingListed)
	}
	const why = " (no kernel dump header)"
	end := c.cov.end()
	if end == 0 {
		return "unknown" + why
	}
	beyond := fmt.Sprintf("unknown beyond %#x%s", end-1, why)
	if gaps := c.cov.describe(end, true, maxMissingListed); gaps != "none" {
		return gaps + "; " + beyond
	}
	return beyond
}

func (c *session) symlink(kind, target string) {
	fd := int(c.files.dir.Fd())
	link := kind + "." + c.host + ".last"
	if err := unix.Unlinkat(fd, link, 0); err != nil && err != unix.ENOENT {
		c.s.logf(LevelError, "unlinkat(): %s", strerror(err))
		return
	}
	if err := unix.Symlinkat(target, fd, link); err != nil {
		c.s.logf(LevelError, "symlink(): %s", strerror(err))
	}
}

// timedOut ends the dump as incomplete. Unlike netdumpd, buffered data
// is written first.
func (c *session) timedOut() {
	if c.files == nil {
		c.end(timeout, "")
		return
	}
	if !c.flush() {
		return
	}
	c.end(timeout, statusTimedOut)
	c.s.logf(LevelInfo, "Client %s timed out", c.ip)
}

// stopped ends the session for the reason it was stopped.
func (c *session) stopped() {
	if c.files == nil {
		c.end(stopped, "")
		return
	}
	if !c.flush() {
		return
	}
	switch stopWhy(c.why.Load()) {
	case stopTakeover:
		c.end(timeout, "Dump incomplete: the client started a new dump")
		c.s.logf(LevelInfo, "Client %s started a new dump", c.ip)
	default:
		c.end(stopped, statusStopped)
		c.s.logf(LevelInfo, "Client %s: dump interrupted by the shutdown", c.ip)
	}
}

// writeError ends the dump after a failed vmcore write at off.
func (c *session) writeError(off uint64, err error) {
	if diskFull(err) {
		c.s.dirCheckedAt.Store(0) // the next HERALD looks again
	}
	c.s.logf(LevelError, "pwrite (for client %s [%s]): %s", c.host, c.ip, strerror(err))
	c.fail(fmt.Sprintf("Dump unsuccessful: write error @ offset %08x: %s", off, strerror(err)))
}

func (c *session) readError(off uint64, err error) {
	c.s.logf(LevelError, "pread (for client %s [%s]): %s", c.host, c.ip, strerror(err))
	c.fail(fmt.Sprintf("Dump unsuccessful: read error @ offset %08x: %s", off, strerror(err)))
}

// fail ends the dump as unsuccessful with status.
func (c *session) fail(status string) { c.end(failed, status) }

// end writes the final status (when the dump has files and status is
// set), closes the files, forgets the session and queues its Ended.
func (c *session) end(why reason, status string) {
	s := c.s
	// The read buffers go before the server may find itself idle and
	// return memory.
	c.rx = rx{}
	s.detach(c)
	if c.files == nil {
		c.buf = nil
		return
	}
	c.dig.stop()
	if c.dirty.Load() {
		c.syncCore()
	}
	if status != "" {
		c.writeInfo(status, true)
	}
	ev := endedEvent{why: why, info: c.infoPath(), core: c.corePath(), Ended: Ended{
		Reason: why.handler(), Client: c.ip, Host: c.host, Index: c.files.index,
		Dir:  filepath.Join(s.cfg.Dir, c.files.rel),
		Info: c.files.infoBase(), Core: c.name0,
	}}
	if c.key != nil {
		ev.Key = c.files.keyBase()
		c.key.Close()
	}
	if c.kdhOK {
		k := c.kdh
		ev.KDH = &k
	}
	c.core.Close()
	c.files.dir.Close()
	s.ended(ev)
	c.wb, c.wbuf, c.buf, c.rbuf, c.cov, c.conflicts, c.dig = nil, nil, nil, nil, nil, nil, nil
}

// linger keeps a completed session's socket open for a while so that a
// FINISHED retransmitted because our ACK was lost is acknowledged again
// (netdumpd's port is closed by then and the client reports failure).
func (c *session) linger() {
	if !c.s.linger(c) {
		return
	}
	defer c.s.unlinger(c)
	buf := make([]byte, lingerBuf)
	until := time.Now().Add(min(lingerTime, c.s.cfg.Timeout))
	c.conn.SetReadDeadline(until)
	for !c.stopping() && time.Now().Before(until) {
		n, err := c.conn.Read(buf)
		if err != nil {
			if errors.Is(err, syscall.ECONNREFUSED) {
				continue
			}
			return
		}
		if h, _, err := wire.ParseMessage(buf[:n]); err == nil && h.Type == wire.Finished && h.Seqno == c.finSeq {
			c.ackOwn(h.Seqno)
			c.flushAcks()
		}
	}
}

// ensure *os.File stays a coreFile.
var _ coreFile = (*os.File)(nil)
