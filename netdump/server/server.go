// Package server is a netdump server: the core of a drop-in replacement
// for FreeBSD's netdumpd. It receives kernel
// dumps over UDP and stores them as vmcore/info/key files in a dump
// directory, with netdumpd's names, numbering, log texts and handler
// script. Sockets come from a Network, so it runs on the host or on a
// user-space stack.
//
// Where netdumpd is known to be wrong it does better: payloads up to
// wire.MaxPayload, duplicate KDH/FINISHED recognised by seqno, a late
// FINISHED re-acknowledged, holes reported (Missing ranges) and a SHA-256
// of the stored vmcore recorded in the info file.
package server

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/tamadump/tamadump/netdump/wire"
)

// Defaults (netdumpd's constants).
const (
	DefaultTimeout = 600 * time.Second // CLIENT_TIMEOUT
	DefaultTPass   = 10 * time.Second  // CLIENT_TPASS
	// RecvBuffer is the per-client SO_RCVBUF asked for: netdumpd's 128 KiB
	// holds about 60 full datagrams, tamadump's client keeps up to 256 in
	// flight (the kernel may cap it at net.core.rmem_max).
	RecvBuffer = 1 << 20
	// maxLinger bounds the completed sessions kept to re-ACK a late
	// FINISHED.
	maxLinger = 64
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
// elsewhere mean netdumpd's defaults.
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
	// address is used.
	LookupAddr func(ctx context.Context, ip netip.Addr) (string, error)
	// Log receives each log line without its trailing newline; nil
	// discards them.
	Log func(level Level, msg string)
	// Ended, if set, is called on the session's goroutine when a dump
	// has ended and its files are closed, before the handler runs. It must
	// return quickly: long work (the post-mortem analysis) goes elsewhere.
	Ended func(Ended)

	// wrapCore lets tests interpose on vmcore writes (disk full).
	wrapCore func(coreFile) coreFile
}

// Server is a running netdump server.
type Server struct {
	cfg    Config
	dir    *os.File // the dump directory; every file is opened relative to it
	herald HeraldConn

	mu        sync.Mutex
	sessions  map[netip.Addr]*session // active sessions by client IP
	lingering []*session              // completed, kept to re-ACK FINISHED
	closing   bool

	sessWG    sync.WaitGroup
	handlerWG sync.WaitGroup
	closeOnce sync.Once
	closed    chan struct{} // closed when Close has finished
	stopped   atomic.Bool
}

// New opens the dump directory and the HERALD socket.
func New(cfg Config) (*Server, error) {
	if cfg.DefaultPath == "" {
		cfg.DefaultPath = "."
	}
	if cfg.AckPort == 0 {
		cfg.AckPort = wire.ClientPort
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = DefaultTimeout
	}
	if cfg.TPass <= 0 {
		cfg.TPass = DefaultTPass
	}
	if cfg.Network == nil {
		cfg.Network = OSNetwork{}
	}
	if cfg.LookupAddr == nil {
		cfg.LookupAddr = lookupAddr
	}
	if cfg.Handler != "" {
		// The handler runs in Dir; a relative name must not change
		// meaning.
		abs, err := filepath.Abs(cfg.Handler)
		if err != nil {
			return nil, err
		}
		cfg.Handler = abs
	}
	if cfg.Log == nil {
		cfg.Log = func(Level, string) {}
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
	return &Server{
		cfg:      cfg,
		dir:      dir,
		herald:   h,
		sessions: make(map[netip.Addr]*session),
		closed:   make(chan struct{}),
	}, nil
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
		if err != nil || h.Type != wire.Herald || !src.Addr().Is4() || !dst.Is4() {
			s.logf(LevelError, "netdump_cap_herald(): Invalid argument")
			continue
		}
		s.heraldFrom(src.Addr(), dst, h.Seqno, wire.HeraldPath(payload))
	}
}

// heraldFrom handles a valid HERALD (netdumpd's server_event).
func (s *Server) heraldFrom(ip, dst netip.Addr, seqno uint32, path []byte) {
	s.mu.Lock()
	if s.closing {
		s.mu.Unlock()
		return
	}
	if old := s.sessions[ip]; old != nil {
		if !old.anyData.Load() {
			// A retransmitted HERALD: the client missed our ACK.
			s.mu.Unlock()
			old.ack(seqno)
			return
		}
		// The client started over: the old dump ends as timed out.
		delete(s.sessions, ip)
		old.stop()
	}
	s.sessWG.Add(1)
	s.mu.Unlock()

	sess := s.newSession(ip, dst, path)
	if sess == nil {
		s.sessWG.Done()
		s.logf(LevelError, "server_event(): new client allocation failure")
		return
	}
	s.mu.Lock()
	closing := s.closing
	if !closing {
		s.sessions[ip] = sess
	}
	s.mu.Unlock()
	sess.printf("Dump from %s [%s]\n", sess.host, ip)
	s.logf(LevelInfo, "New dump from client %s [%s] (to %s)", sess.host, ip, sess.corePath())
	if closing {
		// Close missed it: it ends at once, as timed out.
		sess.stop()
	} else {
		sess.ack(seqno)
	}
	go func() {
		defer s.sessWG.Done()
		sess.run()
	}()
}

// Close stops the server: open dumps end as timed out (their handler runs
// with reason "timeout"), and Close waits for sessions and handler
// processes to finish.
func (s *Server) Close() error {
	s.closeOnce.Do(func() {
		s.stopped.Store(true)
		s.herald.Close()
		s.logf(LevelInfo, "Shutting down...")
		s.mu.Lock()
		s.closing = true
		for ip, sess := range s.sessions {
			delete(s.sessions, ip)
			sess.stop()
		}
		for _, sess := range s.lingering {
			sess.stop()
		}
		s.mu.Unlock()
		s.sessWG.Wait()
		s.handlerWG.Wait()
		s.dir.Close()
		close(s.closed)
	})
	<-s.closed
	return nil
}

// ended removes a session that finished on its own.
func (s *Server) ended(sess *session) {
	s.mu.Lock()
	if s.sessions[sess.ip] == sess {
		delete(s.sessions, sess.ip)
	}
	s.mu.Unlock()
}

// linger records a completed session that keeps answering FINISHED; it
// reports false when the server is closing. The oldest is evicted when
// too many linger.
func (s *Server) linger(sess *session) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closing {
		return false
	}
	if len(s.lingering) >= maxLinger {
		s.lingering[0].stop()
		s.lingering = s.lingering[1:]
	}
	s.lingering = append(s.lingering, sess)
	return true
}

func (s *Server) unlinger(sess *session) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for i, l := range s.lingering {
		if l == sess {
			s.lingering = append(s.lingering[:i], s.lingering[i+1:]...)
			return
		}
	}
}

// lookupAddr is getnameinfo with NI_NAMEREQD.
func lookupAddr(ctx context.Context, ip netip.Addr) (string, error) {
	names, err := net.DefaultResolver.LookupAddr(ctx, ip.String())
	if err != nil {
		return "", err
	}
	if len(names) == 0 {
		return "", errors.New("no name")
	}
	return names[0], nil
}

// hostName is the <host> of file names: the resolved name up to its first
// dot, else the numeric address.
func (s *Server) hostName(ip netip.Addr) string {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	name, err := s.cfg.LookupAddr(ctx, ip)
	if err == nil {
		if i := strings.IndexByte(name, '.'); i >= 0 {
			name = name[:i]
		}
		// The name becomes part of file names: refuse anything that is
		// not a plain name.
		if name != "" && !strings.ContainsAny(name, "/\x00") {
			return name
		}
	}
	return ip.String()
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
