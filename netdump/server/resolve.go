package server

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"strings"
	"sync"
	"time"
)

// Name resolution. netdumpd names files after the client's reverse-DNS
// name, and looked it up synchronously in its only loop: HERALDs from
// addresses whose PTR lookup hangs kept every other client waiting. Here
// a lookup starts when the HERALD is accepted and runs on its own; the
// HERALD is acknowledged at once. The name is needed only when the first
// data arrives (file names), and then the session waits for its own
// lookup alone, at most LookupTimeout. Results are cached, failures too
// (briefly), and at most maxLookups run at once: beyond that, or after
// the timeout, the numeric address is the name. Kept on by default for
// netdumpd's file names; Config.NoLookup (netdumpd -n) turns it off.
const (
	DefaultLookupTimeout = 2 * time.Second
	nameTTL              = 10 * time.Minute
	failTTL              = time.Minute
	maxLookups           = 32
	maxNames             = 4096
)

type nameEntry struct {
	done    chan struct{} // closed when name is set
	name    string        // "" means numeric
	expires time.Time
}

type resolver struct {
	lookup  func(ctx context.Context, ip netip.Addr) (string, error)
	timeout time.Duration

	mu       sync.Mutex
	names    map[netip.Addr]*nameEntry
	inflight int
	ctx      context.Context
	cancel   context.CancelFunc
}

func newResolver(lookup func(context.Context, netip.Addr) (string, error), timeout time.Duration) *resolver {
	ctx, cancel := context.WithCancel(context.Background())
	return &resolver{lookup: lookup, timeout: timeout, names: make(map[netip.Addr]*nameEntry), ctx: ctx, cancel: cancel}
}

var numericName = func() chan struct{} { c := make(chan struct{}); close(c); return c }()

// start begins resolving ip unless a fresh answer is cached, and returns
// the entry to wait on. It never blocks.
func (r *resolver) start(ip netip.Addr) *nameEntry {
	if r.lookup == nil {
		return &nameEntry{done: numericName}
	}
	now := time.Now()
	r.mu.Lock()
	defer r.mu.Unlock()
	if e := r.names[ip]; e != nil && (e.expires.IsZero() || now.Before(e.expires)) {
		return e
	}
	if r.inflight >= maxLookups {
		return &nameEntry{done: numericName}
	}
	if len(r.names) >= maxNames {
		for k, e := range r.names {
			if !e.expires.IsZero() && now.After(e.expires) {
				delete(r.names, k)
			}
		}
		if len(r.names) >= maxNames {
			return &nameEntry{done: numericName}
		}
	}
	e := &nameEntry{done: make(chan struct{})}
	r.names[ip] = e
	r.inflight++
	go func() {
		ctx, cancel := context.WithTimeout(r.ctx, r.timeout)
		name, err := r.lookup(ctx, ip)
		cancel()
		name = hostPart(name)
		ttl := nameTTL
		if err != nil || name == "" {
			name, ttl = "", failTTL
		}
		r.mu.Lock()
		r.inflight--
		e.name, e.expires = name, time.Now().Add(ttl)
		r.mu.Unlock()
		close(e.done)
	}()
	return e
}

// wait returns the name for ip: the resolved one, or the numeric address
// when the lookup failed, took longer than the timeout or was cancelled.
func (r *resolver) wait(e *nameEntry, ip netip.Addr, stop <-chan struct{}) string {
	t := time.NewTimer(r.timeout)
	defer t.Stop()
	select {
	case <-e.done:
		r.mu.Lock()
		name := e.name
		r.mu.Unlock()
		if name != "" {
			return name
		}
	case <-t.C:
	case <-stop:
	}
	return ip.String()
}

// close abandons the lookups under way. It does not wait for them: a
// resolver that ignores its context (getnameinfo through cgo) must not
// hold up a shutdown.
func (r *resolver) close() { r.cancel() }

// hostPart is the <host> of file names: the name up to its first dot,
// when it is a plain host name (letters, digits, '-', '_').
func hostPart(name string) string {
	name, _, _ = strings.Cut(name, ".")
	if name == "" || len(name) > 63 {
		return ""
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
			return ""
		}
	}
	return name
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
