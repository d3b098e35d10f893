// Command netdumpd receives kernel dumps sent with FreeBSD's netdump
// protocol: a drop-in for FreeBSD's netdumpd(8) on Linux, with the same
// flags, defaults, files and messages.
//
// Differences: Go programs cannot daemon(3), so without -D netdumpd stays
// in the foreground but logs to syslog like the daemon would. Extensions
// (tamadump): -port, -ackport, -timeout and -tpass; limits against floods
// and forged clients, -n (no reverse DNS), -metrics (Prometheus); and after
// each complete dump a post-mortem report, core.txt.<host>.<n>
// (crashinfo.go), whose images are looked up in -symbols.
package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"log/syslog"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/tamadump/tamadump/netdump/crashinfo"
	"github.com/tamadump/tamadump/netdump/ekcd"
	"github.com/tamadump/tamadump/netdump/server"
	"github.com/tamadump/tamadump/netdump/wire"
)

const usageText = `usage: netdumpd [-D] [-a <bind_addr>] [-d <dumpdir>] [-i <script>] [-P <pidfile>]
		[-p <default path>] [-n] [-metrics <addr:port>]
		[-port <herald port>] [-ackport <client port>]
		[-timeout <duration>] [-tpass <duration>] [-symbols <dir>]
		[-private-key <file>] [limits]
       netdumpd crashinfo [-symbols <dir>] [-elf <file>] [-p <private key>] <vmcore>

  -a addr      IPv4 or IPv6 address to listen on (default: all interfaces,
               IPv6 and IPv4)
  -D           debug: log to stdout instead of syslog
  -d dir       dump directory (default /var/crash)
  -i script    run "script reason client_ip hostname infofile corefile"
               after each dump (reason: success, timeout or error)
  -P pidfile   pid file, locked while running (default /var/run/netdumpd.pid)
  -p path      directory under dumpdir for clients that name none (default .)

tamadump extensions:
  -n           no reverse DNS: files are named after the client's address
               (lookups never delay a client, but may take up to 2s each)
  -metrics a   serve Prometheus metrics at http://a/metrics
  -port N      UDP port HERALDs are received on (default 20023)
  -ackport N   client UDP port ACKs are sent to (default 20024)
  -timeout d   abandon a client silent for this long (default 10m0s)
  -tpass d     check for silent clients this often (default 10s)
  -symbols dir where image ELFs are kept by build ID: after each complete
               dump, core.txt.<host>.<n> beside it lists every goroutine
               of the crashed image (without it, header and registers)
  -no-digest   leave out the SHA256 line's digest of each vmcore (about a
               third of netdumpd's CPU per dump)
  -private-key file
               RSA private key (PEM): each complete encrypted dump is
               decrypted into vmcore.<host>.<n> beside its
               vmcore_encrypted.<host>.<n>, and reported from that
  crashinfo    write that report for a vmcore to standard output

limits (a hit is logged and counted; sizes take K, M, G, T):
  -max-sessions N       dumps received at once (default 64)
  -max-half-open N      clients with a HERALD but no data yet; beyond it
                        the oldest is dropped (default 256)
  -half-open-timeout d  drop such a client after this long (default 5s)
  -max-dump size        largest vmcore (default 64G)
  -rate size            bytes per second per client, 0 for no limit
                        (default 1G)
  -min-free size        free space the dump directory needs for a new
                        client (default 64M)
  -takeover d           a HERALD from the address of a dump in progress
                        ends it only if it was silent this long (default 3s)
  -window N             messages in flight per client that each session's
                        receive buffer holds (default 256; SO_RCVBUFFORCE
                        as root, else within net.core.rmem_max)

durability:
  -flush d     acknowledged data is written to the file within d (default
               500ms): it survives netdumpd being killed
  -sync d      and fdatasync'd within d more (default 1s): it survives a
               power loss

netdumpd always stays in the foreground (Go cannot daemon(3)); without -D
it logs to syslog (facility daemon), as the daemon would.
`

// size is a byte count flag with an optional K, M, G or T suffix.
type size uint64

func (s *size) String() string { return strconv.FormatUint(uint64(*s), 10) }

func (s *size) Set(v string) error {
	mult := uint64(1)
	if n := len(v); n > 0 {
		if i := strings.IndexByte("KMGT", v[n-1]); i >= 0 {
			mult, v = 1<<(10*(i+1)), v[:n-1]
		}
	}
	n, err := strconv.ParseUint(v, 10, 64)
	if err != nil || n > (1<<63)/mult {
		return errors.New("bad size")
	}
	*s = size(n * mult)
	return nil
}

func main() { os.Exit(run(os.Args[1:], os.Stdout, os.Stderr)) }

func run(args []string, stdout, stderr io.Writer) int {
	if len(args) > 0 && args[0] == crashinfoCommand {
		return crashinfo.Main(args[1:], stdout, stderr)
	}
	warnx := func(format string, a ...any) { fmt.Fprintf(stderr, "netdumpd: "+format+"\n", a...) }
	fs := flag.NewFlagSet("netdumpd", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	var (
		bind     = fs.String("a", "", "")
		debug    = fs.Bool("D", false, "")
		dumpDir  = fs.String("d", "", "")
		handler  = fs.String("i", "", "")
		pidPath  = fs.String("P", "/var/run/netdumpd.pid", "")
		defPath  = fs.String("p", ".", "")
		port     = fs.Uint("port", wire.ServerPort, "")
		ackPort  = fs.Uint("ackport", wire.ClientPort, "")
		timeout  = fs.Duration("timeout", server.DefaultTimeout, "")
		tpass    = fs.Duration("tpass", server.DefaultTPass, "")
		symbols  = fs.String("symbols", "", "")
		privKey  = fs.String("private-key", "", "")
		showHelp = fs.Bool("h", false, "")
		numeric  = fs.Bool("n", false, "")
		metrics  = fs.String("metrics", "", "")
		maxSess  = fs.Int("max-sessions", server.DefaultMaxSessions, "")
		maxHalf  = fs.Int("max-half-open", server.DefaultMaxHalfOpen, "")
		halfTime = fs.Duration("half-open-timeout", server.DefaultHalfOpenTimeout, "")
		takeover = fs.Duration("takeover", server.DefaultTakeoverAfter, "")
		flush    = fs.Duration("flush", server.DefaultFlushAfter, "")
		syncd    = fs.Duration("sync", server.DefaultSyncEvery, "")
		window   = fs.Int("window", server.DefaultWindow, "")
		noDigest = fs.Bool("no-digest", false, "")
		maxDump  = size(server.DefaultMaxDumpSize)
		rate     = size(server.DefaultRate)
		minFree  = size(server.DefaultMinFree)
	)
	fs.Var(&maxDump, "max-dump", "")
	fs.Var(&rate, "rate", "")
	fs.Var(&minFree, "min-free", "")
	if err := fs.Parse(args); err != nil {
		fmt.Fprintf(stderr, "netdumpd: %v\n%s", err, usageText)
		return 1
	}
	if *showHelp {
		fmt.Fprint(stderr, usageText)
		return 0
	}
	if fs.NArg() != 0 {
		// netdumpd complains but carries on.
		fmt.Fprint(stderr, usageText)
	}
	if *port > 65535 || *ackPort == 0 || *ackPort > 65535 || *timeout <= 0 || *tpass <= 0 {
		warnx("invalid -port, -ackport, -timeout or -tpass")
		return 1
	}
	if *maxSess <= 0 || *maxHalf <= 0 || *halfTime <= 0 || *takeover <= 0 || *flush <= 0 || *syncd <= 0 || *window <= 0 || maxDump == 0 || minFree == 0 {
		warnx("limits and durations must be positive")
		return 1
	}
	rateLimit := int64(rate)
	if rate == 0 {
		rateLimit = server.Unlimited
	}

	listen := netip.IPv6Unspecified() // both families where the host has IPv6
	if *bind == "" {
		warnx("default: listening on all interfaces")
	} else {
		a, err := netip.ParseAddr(*bind)
		if err != nil || a.Is4In6() {
			warnx("invalid bind IP specified")
			return 1
		}
		listen = a
		warnx("listening on IP %s", *bind)
	}
	dec := &crashinfo.Decrypter{}
	if *privKey != "" {
		k, err := ekcd.ReadPrivateKey(*privKey)
		if err != nil {
			warnx("-private-key: %v", err)
			return 1
		}
		dec.Key = k
	}
	if *handler != "" {
		if err := unix.Access(*handler, unix.X_OK); err != nil {
			warnx("cannot access %s: %s", *handler, errText(err))
			return 1
		}
	}

	pid, err := lockPidfile(*pidPath)
	if err != nil {
		if err == unix.EWOULDBLOCK {
			warnx("netdumpd is already running")
		} else {
			warnx("pidfile_open: %s", errText(err))
		}
		return 1
	}
	defer func() {
		os.Remove(*pidPath)
		pid.Close()
	}()

	if *dumpDir == "" {
		*dumpDir = "/var/crash"
		warnx("default: dumping to /var/crash/")
	}
	st, err := os.Stat(*dumpDir)
	if err != nil {
		warnx("invalid dump location specified")
		return 1
	}
	if !st.IsDir() {
		fmt.Fprint(stderr, "Dump location is not a directory")
		return 1
	}
	if err := unix.Access(*dumpDir, unix.W_OK); err != nil {
		warnx("warning: may be unable to write into dump location: %s", errText(err))
	}

	logf, err := logger(*debug, stdout)
	if err != nil {
		warnx("syslog: %s; logging to stderr", errText(err))
		logf = textLogger(stderr)
	}
	reports := newReports(*symbols, logf)
	defer reports.Close()
	dec.Log, dec.Next = logf, reports.Ended
	srv, err := server.New(server.Config{
		Dir:         *dumpDir,
		DefaultPath: *defPath,
		Listen:      netip.AddrPortFrom(listen, uint16(*port)),
		AckPort:     uint16(*ackPort),
		Handler:     *handler,
		Timeout:     *timeout,
		TPass:       *tpass,
		Log:         logf,
		NoLookup:    *numeric,

		MaxSessions:     *maxSess,
		MaxHalfOpen:     *maxHalf,
		HalfOpenTimeout: *halfTime,
		MaxDumpSize:     uint64(maxDump),
		Rate:            rateLimit,
		MinFree:         uint64(minFree),
		TakeoverAfter:   *takeover,
		FlushAfter:      *flush,
		SyncEvery:       *syncd,
		Window:          *window,
		NoDigest:        *noDigest,
		Ended:           dec.Ended,
	})
	if err != nil {
		logf(server.LevelError, "bind(): "+errText(err))
		return 1
	}
	if *metrics != "" {
		ln, err := net.Listen("tcp", *metrics)
		if err != nil {
			logf(server.LevelError, "metrics: "+errText(err))
			srv.Close()
			return 1
		}
		mux := http.NewServeMux()
		mux.Handle("/metrics", srv.MetricsHandler())
		hs := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
		go hs.Serve(ln)
		defer hs.Close()
		logf(server.LevelInfo, "Serving metrics on http://"+ln.Addr().String()+"/metrics")
	}

	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGINT, syscall.SIGTERM)
	// netdumpd blocks every other signal.
	signal.Ignore(syscall.SIGHUP, syscall.SIGUSR1, syscall.SIGUSR2, syscall.SIGPIPE)
	go func() {
		<-sig
		srv.Close()
	}()
	if err := srv.Run(); err != nil {
		logf(server.LevelError, "recvmsg(): "+errText(err))
		srv.Close()
		return 1
	}
	return 0
}

// lockPidfile is pidfile_open + pidfile_write: the file stays locked
// while we run.
func lockPidfile(path string) (*os.File, error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|syscall.O_CLOEXEC, 0600)
	if err != nil {
		return nil, err
	}
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		f.Close()
		return nil, err
	}
	f.Truncate(0)
	f.WriteAt([]byte(strconv.Itoa(os.Getpid())+"\n"), 0)
	return f, nil
}

// logger routes log lines to syslog, or with -D to stdout.
func logger(debug bool, stdout io.Writer) (func(server.Level, string), error) {
	if debug {
		// netdumpd's -D printing sends every priority to stdout.
		return textLogger(stdout), nil
	}
	w, err := syslog.New(syslog.LOG_DAEMON|syslog.LOG_INFO, "netdumpd")
	if err != nil {
		return nil, err
	}
	return func(l server.Level, msg string) {
		switch l {
		case server.LevelInfo:
			w.Info(msg)
		case server.LevelWarning:
			w.Warning(msg)
		default:
			w.Err(msg)
		}
	}, nil
}

func textLogger(w io.Writer) func(server.Level, string) {
	return func(_ server.Level, msg string) {
		if msg == "." {
			// Progress dots share a line, as in netdumpd.
			io.WriteString(w, msg)
			return
		}
		io.WriteString(w, msg+"\n")
	}
}

// errText is an error as strerror(3) would say it when it is an errno.
func errText(err error) string {
	var e syscall.Errno
	if errors.As(err, &e) {
		s := e.Error()
		return strings.ToUpper(s[:1]) + s[1:]
	}
	return err.Error()
}
