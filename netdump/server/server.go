// Package server is a netdump server: the core of a drop-in replacement
// for FreeBSD's netdumpd. It receives kernel dumps over UDP and stores
// them as vmcore/info/key files in a dump directory, with netdumpd's
// names, numbering, log texts and handler script. Sockets come from a
// Network, so it runs on the host or on a user-space stack.
//
// netdumpd is an unauthenticated UDP service; this one is built to stand
// that:
//   - Work per datagram is bounded by the datagram: coverage lives in a
//     B-tree, the SHA-256 is computed as bytes arrive (declared zeros
//     within a budget earned by data received), nothing is read back for
//     a length a client merely claims.
//   - Limits: dumps at once (MaxSessions), sessions that sent a HERALD
//     but no data (MaxHalfOpen, HalfOpenTimeout; they own no files),
//     dump and key size, bytes per second per client, free space. A
//     limit hit is logged and counted and touches no other session.
//   - A HERALD from the address of a live dump does not end it; only one
//     silent for TakeoverAfter is replaced (the client started over).
//   - Received bytes are never rewritten: the first arrival wins and a
//     differing rewrite is recorded in the info file.
//   - Durability: acknowledged data leaves the process within FlushAfter
//     and reaches the disk within SyncEvery more; the info file always
//     holds a true status, replaced atomically; a restart marks dumps
//     left in progress.
//
// Where netdumpd is known to be wrong it does better: payloads up to
// wire.MaxPayload, duplicate KDH/FINISHED recognised by seqno, a late
// FINISHED re-acknowledged, holes reported (Missing ranges).
package server

import (
	"container/list"
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/tamadump/tamadump/netdump/wire"
)

// Defaults (the first two are netdumpd's constants).
const (
	DefaultTimeout = 600 * time.Second // CLIENT_TIMEOUT
	DefaultTPass   = 10 * time.Second  // CLIENT_TPASS
	// DefaultWindow is the messages in flight a session's receive buffer
	// is sized for: tamadump's client keeps up to 256 in flight (netdumpd's
	// 128 KiB holds about 60 full datagrams of 1500 bytes, 7 of 9000).
	DefaultWindow = 256

	DefaultMaxSessions     = 64
	DefaultMaxHalfOpen     = 256
	DefaultHalfOpenTimeout = 5 * time.Second
	DefaultMaxDumpSize     = 64 << 30
	DefaultRate            = 1 << 30 // bytes per second per client
	DefaultMinFree         = 64 << 20
	DefaultTakeoverAfter   = 3 * time.Second
	DefaultFlushAfter      = 500 * time.Millisecond
	DefaultSyncEvery       = time.Second

	// Unlimited, as Config.Rate, lifts the rate limit.
	Unlimited = -1

	// maxLinger bounds the completed sessions kept to re-ACK a late
	// FINISHED, lingerTime how long each is kept: a client retries its
	// FINISHED for about 12 s.
	maxLinger  = 64
	lingerTime = 30 * time.Second
	// halfOpenGrace: a half-open session this young is never dropped to
	// make room.
	halfOpenGrace = 500 * time.Millisecond
	// freeEvery bounds how often becoming idle returns memory (a GC).
	freeEvery = 5 * time.Second
)

// Level is a log priority.
type Level int

// Log levels, as netdumpd's syslog priorities.
const (
	LevelInfo Level = iota
	LevelWarning
	LevelError
)

func (l Level) String() string {
	switch l {
	case LevelInfo:
		return "info"
	case LevelWarning:
		return "warning"
	}
	return "error"
}

// Config configures a Server. Dir and Listen are required; zero values
// elsewhere mean the defaults above.
type Config struct {
	// Dir is the dump directory (-d); it must exist.
	Dir string
	// DefaultPath (-p) is the directory, relative to Dir, for clients
	// whose HERALD names no usable path; "" means ".".
	DefaultPath string
	// Listen is where HERALDs are received (-a, port 20023). Port 0 picks
	// a free port; Server.Addr reports it.
	Listen netip.AddrPort
	// AckPort is the client port ACKs go to; 0 means wire.ClientPort.
	AckPort uint16
	// Handler (-i) is run after each dump as
	// `Handler reason client_ip hostname infofile corefile`.
	Handler string
	// Timeout is the idle time after which a session is abandoned, checked
	// every TPass.
	Timeout, TPass time.Duration
	// Network supplies the sockets; nil means OSNetwork.
	Network Network
	// LookupAddr resolves a client address to a host name (reverse DNS,
	// name required); nil uses the system resolver. On error the numeric
	// address is used. NoLookup skips it: names are numeric.
	LookupAddr    func(ctx context.Context, ip netip.Addr) (string, error)
	NoLookup      bool
	LookupTimeout time.Duration
	// Log receives each log line without its trailing newline; nil
	// discards them.
	Log func(level Level, msg string)
	// Ended, if set, is called for every dump that ends, after its files
	// are closed and its handler started, one at a time on a goroutine of
	// its own (never on the UDP path); dumps a restart found in progress
	// are reported from New. Close waits for the calls queued.
	Ended func(Ended)

	// MaxSessions bounds the dumps received at once; a HERALD beyond it
	// is refused.
	MaxSessions int
	// MaxHalfOpen bounds the sessions that have a HERALD but no data yet;
	// beyond it the oldest is dropped. One with no data after
	// HalfOpenTimeout is dropped too. Such sessions own no files.
	MaxHalfOpen     int
	HalfOpenTimeout time.Duration
	// MaxDumpSize bounds a vmcore (the header's length bounds it further
	// once known).
	MaxDumpSize uint64
	// NoDigest leaves out the SHA-256 of each vmcore, about a third of
	// the CPU a dump costs netdumpd (FreeBSD's computes none); the info
	// file then says it was not computed.
	NoDigest bool
	// Rate is the bytes per second one client may send; a faster one is
	// slowed down (its datagrams wait). Unlimited lifts it.
	Rate int64
	// MinFree is the free space the dump directory needs for a HERALD to
	// be accepted.
	MinFree uint64
	// TakeoverAfter: a HERALD from the address of a running dump ends it
	// only if that dump was silent this long (the client started over);
	// otherwise the HERALD is ignored.
	TakeoverAfter time.Duration
	// FlushAfter bounds how long acknowledged data waits in the write-back
	// buffer; SyncEvery how often written data is fdatasync'd.
	FlushAfter, SyncEvery time.Duration
	// Window is the messages in flight per client each session socket's
	// receive buffer holds, at the size of the largest datagram seen
	// (SO_RCVBUFFORCE when root, else SO_RCVBUF within
	// net.core.rmem_max).
	Window int

	// wrapCore lets tests interpose on vmcore writes (disk full).
	wrapCore func(coreFile) coreFile
}

// validate fills in defaults and rejects values that make no sense.
func (c *Config) validate() error {
	if c.Dir == "" {
		return errors.New("server: no dump directory")
	}
	if c.DefaultPath == "" {
		c.DefaultPath = "."
	}
	if c.AckPort == 0 {
		c.AckPort = wire.ClientPort
	}
	if c.Network == nil {
		c.Network = OSNetwork{}
	}
	if c.LookupAddr == nil {
		c.LookupAddr = lookupAddr
	}
	if c.NoLookup {
		c.LookupAddr = nil
	}
	if c.Log == nil {
		c.Log = func(Level, string) {}
	}
	for _, d := range []struct {
		v   *time.Duration
		def time.Duration
	}{
		{&c.Timeout, DefaultTimeout}, {&c.TPass, DefaultTPass}, {&c.LookupTimeout, DefaultLookupTimeout},
		{&c.HalfOpenTimeout, DefaultHalfOpenTimeout}, {&c.TakeoverAfter, DefaultTakeoverAfter},
		{&c.FlushAfter, DefaultFlushAfter}, {&c.SyncEvery, DefaultSyncEvery},
	} {
		if *d.v < 0 {
			return fmt.Errorf("server: negative duration %v", *d.v)
		}
		if *d.v == 0 {
			*d.v = d.def
		}
	}
	if c.MaxSessions < 0 || c.MaxHalfOpen < 0 || c.Rate < Unlimited || c.Window < 0 {
		return errors.New("server: negative limit")
	}
	if c.MaxSessions == 0 {
		c.MaxSessions = DefaultMaxSessions
	}
	if c.Window == 0 {
		c.Window = DefaultWindow
	}
	if c.MaxHalfOpen == 0 {
		c.MaxHalfOpen = DefaultMaxHalfOpen
	}
	if c.MaxDumpSize == 0 {
		c.MaxDumpSize = DefaultMaxDumpSize
	}
	c.MaxDumpSize = min(c.MaxDumpSize, 1<<62)
	if c.Rate == 0 {
		c.Rate = DefaultRate
	}
	if c.MinFree == 0 {
		c.MinFree = DefaultMinFree
	}
	if c.Handler != "" {
		// The handler runs in Dir; a relative name must not change
		// meaning.
		abs, err := filepath.Abs(c.Handler)
		if err != nil {
			return err
		}
		c.Handler = abs
	}
	return nil
}

// Server is a running netdump server.
type Server struct {
	cfg     Config
	absDir  string
	herald  HeraldConn
	names   *resolver
	metrics *metrics

	dirMu sync.RWMutex
	dir   *os.File // the dump directory; every file is opened relative to it
	// When the directory was last examined (unix ns; a session that hits
	// a full disk resets it), and the verdict. Only the HERALD loop uses
	// dirErr.
	dirCheckedAt atomic.Int64
	dirErr       error

	mu        sync.Mutex
	sessions  map[netip.Addr]*session // half-open and receiving, by client IP
	halfOpen  list.List               // of *session, oldest first
	receiving int
	lingering []*session // completed, kept to re-ACK FINISHED; oldest first
	busy      bool       // some session exists
	freedAt   time.Time  // last return of memory to the system
	freeing   bool       // a return of memory is scheduled
	closing   bool

	limitLog   limitLog
	rcvbufOnce sync.Once // the first session says how buffers are sized
	events     events
	sessWG     sync.WaitGroup
	handlerWG  sync.WaitGroup
	syncStop   chan struct{}
	syncDone   chan struct{}
	closeOnce  sync.Once
	closed     chan struct{} // closed when Close has finished
	stopped    atomic.Bool
}

// New opens the dump directory and the HERALD socket, and marks the
// dumps an earlier netdumpd left in progress.
func New(cfg Config) (*Server, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	abs, err := filepath.Abs(cfg.Dir)
	if err != nil {
		return nil, err
	}
	dir, err := openDumpDir(cfg.Dir)
	if err != nil {
		return nil, err
	}
	h, err := cfg.Network.ListenHerald(cfg.Listen)
	if err != nil {
		dir.Close()
		return nil, err
	}
	s := &Server{
		cfg:      cfg,
		absDir:   abs,
		dir:      dir,
		herald:   h,
		names:    newResolver(cfg.LookupAddr, cfg.LookupTimeout),
		metrics:  newMetrics(),
		sessions: make(map[netip.Addr]*session),
		syncStop: make(chan struct{}),
		syncDone: make(chan struct{}),
		closed:   make(chan struct{}),
	}
	s.startEvents()
	s.recover()
	go s.syncer()
	return s, nil
}

// Addr is the address HERALDs are received on.
func (s *Server) Addr() netip.AddrPort { return s.herald.Addr() }

func (s *Server) logf(l Level, format string, args ...any) {
	s.cfg.Log(l, fmt.Sprintf(format, args...))
}

// Run serves HERALDs until Close; each accepted client is then served by
// its own goroutine. After Close it returns nil once shutdown is complete.
func (s *Server) Run() error {
	s.logf(LevelInfo, "Waiting for clients.")
	buf := make([]byte, wire.HeaderSize+wire.MaxHeraldPath)
	for {
		n, src, dst, err := s.herald.ReadHerald(buf)
		if err != nil {
			if s.stopped.Load() {
				<-s.closed
				return nil
			}
			if errors.Is(err, net.ErrClosed) {
				return err
			}
			s.logf(LevelError, "netdump_cap_herald(): %s", strerror(err))
			continue
		}
		h, payload, err := wire.ParseMessage(buf[:n])
		if err != nil || h.Type != wire.Herald || !sameFamily(src.Addr(), dst) {
			s.logf(LevelError, "netdump_cap_herald(): Invalid argument")
			continue
		}
		s.heraldFrom(src.Addr(), dst, h, wire.HeraldPath(payload))
	}
}

// heraldFrom handles a valid HERALD (netdumpd's server_event). Nothing
// here waits on anything but local system calls.
func (s *Server) heraldFrom(ip, dst netip.Addr, h wire.Header, path []byte) {
	now, seqno := time.Now(), h.Seqno
	s.mu.Lock()
	if s.closing {
		s.mu.Unlock()
		return
	}
	if old := s.sessions[ip]; old != nil {
		if seqno == old.heraldSeq {
			// A retransmitted HERALD: the client missed our ACK.
			s.mu.Unlock()
			s.metrics.heralds.WithLabelValues("retransmit").Inc()
			old.ack(seqno)
			return
		}
		// The takeover rule: a client that starts over was silent first
		// (it gave up, or rebooted); a HERALD while its dump is heard
		// from is a second host behind its address or a forgery, and is
		// ignored. (Answering it could acknowledge, from a new port, a
		// seqno the client has in flight.)
		if silent := now.Sub(old.heard()); silent < s.cfg.TakeoverAfter {
			s.mu.Unlock()
			s.metrics.heralds.WithLabelValues("refused").Inc()
			s.limitHit(limitBusy, "Ignoring HERALD from %s: its dump is in progress (heard %v ago; replaced only after %v of silence)",
				ip, silent.Round(time.Millisecond), s.cfg.TakeoverAfter)
			return
		}
		s.detachLocked(old)
		old.stop(stopTakeover)
	}
	s.mu.Unlock()

	if err := s.checkDir(now); err != nil {
		s.metrics.heralds.WithLabelValues("refused").Inc()
		s.limitHit(limitDir, "Ignoring HERALD from %s: dump directory %s: %s", ip, s.cfg.Dir, err)
		return
	}
	s.mu.Lock()
	if s.receiving >= s.cfg.MaxSessions {
		s.mu.Unlock()
		s.metrics.heralds.WithLabelValues("refused").Inc()
		s.limitHit(limitSessions, "Ignoring HERALD from %s: %d dumps in progress, the limit", ip, s.cfg.MaxSessions)
		return
	}
	var evict *session
	if s.halfOpen.Len() >= s.cfg.MaxHalfOpen {
		// The oldest makes room, unless it is young: a client that got
		// its ACK must have the time to answer it, whatever floods in.
		oldest := s.halfOpen.Front().Value.(*session)
		if now.Sub(oldest.started) < halfOpenGrace {
			s.mu.Unlock()
			s.metrics.heralds.WithLabelValues("refused").Inc()
			s.limitHit(limitHalfOpen, "Ignoring HERALD from %s: %d sessions wait for their first data, the limit", ip, s.cfg.MaxHalfOpen)
			return
		}
		evict = oldest
		s.detachLocked(evict)
	}
	s.sessWG.Add(1)
	s.mu.Unlock()
	if evict != nil {
		evict.stop(stopEvicted)
		s.limitHit(limitHalfOpen, "Dropping the session of %s: %d sessions wait for their first data, the limit", evict.ip, s.cfg.MaxHalfOpen)
	}

	sess := s.newSession(ip, dst, seqno, h.Aux2 == wire.AckLists, path)
	if sess == nil {
		s.sessWG.Done()
		s.logf(LevelError, "server_event(): new client allocation failure")
		return
	}
	s.mu.Lock()
	if s.closing {
		s.mu.Unlock()
		sess.conn.Close()
		s.sessWG.Done()
		return
	}
	s.sessions[ip] = sess
	sess.elem = s.halfOpen.PushBack(sess)
	s.gaugesLocked()
	s.mu.Unlock()
	s.metrics.heralds.WithLabelValues("accepted").Inc()
	sess.ack(seqno)
	go func() {
		defer s.sessWG.Done()
		sess.run()
	}()
}

// promote makes a half-open session a receiving one, within
// MaxSessions.
func (s *Server) promote(c *session) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if c.elem == nil {
		return false // dropped meanwhile
	}
	if s.receiving >= s.cfg.MaxSessions {
		return false
	}
	s.halfOpen.Remove(c.elem)
	c.elem = nil
	c.receiving = true
	s.receiving++
	s.gaugesLocked()
	return true
}

// detach forgets a session that ends.
func (s *Server) detach(c *session) {
	s.mu.Lock()
	s.detachLocked(c)
	s.mu.Unlock()
}

func (s *Server) detachLocked(c *session) {
	if s.sessions[c.ip] == c {
		delete(s.sessions, c.ip)
	}
	if c.elem != nil {
		s.halfOpen.Remove(c.elem)
		c.elem = nil
	}
	if c.receiving {
		c.receiving = false
		s.receiving--
	}
	s.gaugesLocked()
}

func (s *Server) gaugesLocked() {
	s.metrics.sessions.WithLabelValues("half_open").Set(float64(s.halfOpen.Len()))
	s.metrics.sessions.WithLabelValues("receiving").Set(float64(s.receiving))
	s.metrics.sessions.WithLabelValues("lingering").Set(float64(len(s.lingering)))
	// Lingering sessions hold a few bytes each: with no dump receiving,
	// the memory of the last ones can go back.
	busy := s.halfOpen.Len()+s.receiving > 0
	if !busy && s.busy && !s.closing && !s.freeing {
		// netdumpd is idle nearly always: what a burst of dumps (or an
		// attack) made the runtime keep goes back to the system, at
		// most every freeEvery (later, if it freed memory just now, and
		// only if still idle then).
		s.freeing = true
		time.AfterFunc(max(0, freeEvery-time.Since(s.freedAt)), s.freeIfIdle)
	}
	s.busy = busy
}

func (s *Server) freeIfIdle() {
	s.mu.Lock()
	s.freeing = false
	idle := !s.busy && !s.closing
	if idle {
		s.freedAt = time.Now()
	}
	s.mu.Unlock()
	if idle {
		// Two collections: the batch system calls' pooled iovecs still
		// point at the last sessions' buffers until the second.
		runtime.GC()
		debug.FreeOSMemory()
	}
}

// Close stops the server without waiting on any client: open dumps end
// at once as stopped (their handler runs with reason "timeout", as with
// netdumpd). Close waits for the sessions to write their last state, for
// Config.Ended and for handler processes.
func (s *Server) Close() error {
	s.closeOnce.Do(func() {
		s.stopped.Store(true)
		s.herald.Close()
		s.logf(LevelInfo, "Shutting down...")
		s.mu.Lock()
		s.closing = true
		for _, sess := range s.sessions {
			sess.stop(stopClosed)
		}
		for _, sess := range s.lingering {
			sess.stop(stopClosed)
		}
		s.mu.Unlock()
		s.names.close()
		s.sessWG.Wait()
		close(s.syncStop)
		<-s.syncDone
		s.stopEvents()
		s.handlerWG.Wait()
		s.dir.Close()
		close(s.closed)
	})
	<-s.closed
	return nil
}

// linger records a completed session that keeps answering FINISHED; it
// reports false when the server is closing. An address keeps one; the
// oldest is evicted when too many linger.
func (s *Server) linger(c *session) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closing {
		return false
	}
	var oldest *session
	if len(s.lingering) >= maxLinger {
		oldest = s.lingering[0]
	}
	keep := s.lingering[:0]
	for _, l := range s.lingering {
		if l.ip == c.ip || l == oldest {
			l.stop(stopClosed)
			continue
		}
		keep = append(keep, l)
	}
	s.lingering = append(keep, c)
	s.gaugesLocked()
	return true
}

func (s *Server) unlinger(c *session) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for i, l := range s.lingering {
		if l == c {
			s.lingering = append(s.lingering[:i], s.lingering[i+1:]...)
			break
		}
	}
	s.gaugesLocked()
}

// syncer fdatasyncs the vmcores written to since its last round, off
// the UDP path: what the page cache holds reaches the disk within
// SyncEvery.
func (s *Server) syncer() {
	defer close(s.syncDone)
	t := time.NewTicker(s.cfg.SyncEvery)
	defer t.Stop()
	var dirty []*session
	for {
		select {
		case <-s.syncStop:
			return
		case <-t.C:
		}
		s.mu.Lock()
		for _, c := range s.sessions {
			if c.dirty.Swap(false) {
				dirty = append(dirty, c)
			}
		}
		s.mu.Unlock()
		for i, c := range dirty {
			c.syncCore()
			dirty[i] = nil
		}
		dirty = dirty[:0]
	}
}

// strerror renders err like strerror(3): the errno text, capitalised.
func strerror(err error) string {
	msg := err.Error()
	var errno syscall.Errno
	if errors.As(err, &errno) {
		msg = errno.Error()
	}
	if msg != "" {
		msg = strings.ToUpper(msg[:1]) + msg[1:]
	}
	return msg
}

// sameFamily accepts a HERALD from IPv4 to IPv4 or from IPv6 to IPv6:
// the per-client socket is bound to dst and connected to the source.
func sameFamily(src, dst netip.Addr) bool {
	return src.IsValid() && dst.IsValid() && src.Is4() == dst.Is4()
}
