package server

import (
	"net/http"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Limits, as named in the netdumpd_limit_hits_total counter and in log
// lines.
const (
	limitSessions = "sessions"       // Config.MaxSessions dumps at once
	limitHalfOpen = "half_open"      // Config.MaxHalfOpen: the oldest is dropped
	limitIdle     = "half_open_idle" // no data within Config.HalfOpenTimeout
	limitBusy     = "busy_address"   // HERALD from the address of a live dump
	limitDumpSize = "dump_size"      // Config.MaxDumpSize or the header's length
	limitKeySize  = "key_size"       // maxKeySize
	limitRate     = "rate"           // Config.Rate: the session was slowed
	limitDir      = "dump_dir"       // directory gone, or below Config.MinFree
	limitSpans    = "fragments"      // maxSpans
)

var allLimits = []string{limitSessions, limitHalfOpen, limitIdle, limitBusy, limitDumpSize, limitKeySize, limitRate, limitDir, limitSpans}

// Reasons a datagram is dropped (netdumpd_dropped_total).
const (
	dropRunt = "runt"
	dropSize = "bad_size"
	dropType = "unexpected_type"
	dropCut  = "truncated" // longer than the read buffers, which then grow
)

// metrics are the server's Prometheus collectors, on a registry of its
// own (several servers may run in one process).
type metrics struct {
	reg       *prometheus.Registry
	sessions  *prometheus.GaugeVec
	heralds   *prometheus.CounterVec
	packets   *prometheus.CounterVec
	bytes     prometheus.Counter
	dropped   *prometheus.CounterVec
	limits    *prometheus.CounterVec
	dumps     *prometheus.CounterVec
	conflicts prometheus.Counter
	zeroHash  prometheus.Counter
	readBack  prometheus.Counter

	// Prebound children for the per-datagram path.
	vmcorePkts, otherPkts prometheus.Counter
}

func newMetrics() *metrics {
	m := &metrics{
		reg: prometheus.NewRegistry(),
		sessions: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "netdumpd_sessions",
			Help: "Sessions by state: half_open (HERALD, no data yet), receiving, lingering (complete, answering a late FINISHED)."}, []string{"state"}),
		heralds: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "netdumpd_heralds_total",
			Help: "Valid HERALDs by outcome: accepted, retransmit (answered again), refused."}, []string{"result"}),
		packets: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "netdumpd_packets_total",
			Help: "Valid messages received on session sockets, by kind."}, []string{"type"}),
		bytes: prometheus.NewCounter(prometheus.CounterOpts{Name: "netdumpd_received_bytes_total",
			Help: "VMCORE payload bytes received."}),
		dropped: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "netdumpd_dropped_total",
			Help: "Datagrams dropped unacknowledged, by reason."}, []string{"reason"}),
		limits: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "netdumpd_limit_hits_total",
			Help: "Times a limit was hit, by limit."}, []string{"limit"}),
		dumps: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "netdumpd_dumps_total",
			Help: "Dumps ended, by result: success, timeout, error, stopped."}, []string{"result"}),
		conflicts: prometheus.NewCounter(prometheus.CounterOpts{Name: "netdumpd_conflicting_rewrites_total",
			Help: "Messages whose bytes differ from bytes already received at the same offsets (kept: the first arrival)."}),
		zeroHash: prometheus.NewCounter(prometheus.CounterOpts{Name: "netdumpd_digest_zero_bytes_total",
			Help: "Bytes of declared zero runs and holes fed to SHA-256 (bounded by the data received)."}),
		readBack: prometheus.NewCounter(prometheus.CounterOpts{Name: "netdumpd_read_back_bytes_total",
			Help: "Bytes read back from vmcore files (comparisons, hashing of data that arrived out of order)."}),
	}
	m.reg.MustRegister(m.sessions, m.heralds, m.packets, m.bytes, m.dropped, m.limits, m.dumps, m.conflicts, m.zeroHash, m.readBack)
	for _, s := range []string{"half_open", "receiving", "lingering"} {
		m.sessions.WithLabelValues(s)
	}
	for _, r := range []string{"accepted", "retransmit", "refused"} {
		m.heralds.WithLabelValues(r)
	}
	for _, r := range []string{dropRunt, dropSize, dropType, dropCut} {
		m.dropped.WithLabelValues(r)
	}
	for _, l := range allLimits {
		m.limits.WithLabelValues(l)
	}
	for _, r := range []reason{success, timeout, failed, stopped} {
		m.dumps.WithLabelValues(string(r))
	}
	m.vmcorePkts = m.packets.WithLabelValues("vmcore")
	m.otherPkts = m.packets.WithLabelValues("other")
	return m
}

// MetricsHandler serves the server's metrics in Prometheus' formats.
func (s *Server) MetricsHandler() http.Handler {
	return promhttp.HandlerFor(s.metrics.reg, promhttp.HandlerOpts{})
}

// Metrics is the server's registry, for tests and embedders.
func (s *Server) Metrics() prometheus.Gatherer { return s.metrics.reg }

// limitLog says a kind of event at most once a second (a flood must not
// flood the log), with the count of the ones not said.
type limitLog struct {
	mu     sync.Mutex
	last   map[string]time.Time
	unsaid map[string]int
}

// limitHit counts a hit of limit and logs why.
func (s *Server) limitHit(limit string, format string, args ...any) {
	s.metrics.limits.WithLabelValues(limit).Inc()
	s.sayLimited(LevelWarning, limit, format, args...)
}

// sayLimited logs a line of kind key unless one was logged less than a
// second ago.
func (s *Server) sayLimited(level Level, key string, format string, args ...any) {
	l := &s.limitLog
	now := time.Now()
	l.mu.Lock()
	if l.last == nil {
		l.last, l.unsaid = make(map[string]time.Time), make(map[string]int)
	}
	if now.Sub(l.last[key]) < time.Second {
		l.unsaid[key]++
		l.mu.Unlock()
		return
	}
	l.last[key] = now
	more := l.unsaid[key]
	l.unsaid[key] = 0
	l.mu.Unlock()
	if more > 0 {
		format += " (and %d more like it)"
		args = append(args, more)
	}
	s.logf(level, format, args...)
}
