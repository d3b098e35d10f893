// Command netdumpload drives a netdump server over UDP with concurrent
// synthetic dumps and measures it: ingest MB/s, the server's CPU time per
// message (from /proc/<pid>/stat), and receive drops (each session
// socket's from /proc/net/udp just before the dump ends, and the host's
// Udp RcvbufErrors/InErrors from /proc/net/snmp). Every dump is verified
// byte-exact: the SHA-256 of the vmcore the server wrote against that of
// the bytes sent.
//
//	netdumpload [flags] [-- server command and arguments]
//
// With a command, netdumpload starts the server, waits until it listens
// at -server, measures, and stops it (SIGTERM); otherwise -pid names the
// running server.
package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"net/netip"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/tamadump/tamadump/netdump/loadgen"
	"github.com/tamadump/tamadump/netdump/wire"
)

func main() { os.Exit(run(os.Args[1:], os.Stdout, os.Stderr)) }

// size is a byte count with an optional K, M or G suffix.
type size int64

func (s *size) String() string { return strconv.FormatInt(int64(*s), 10) }

func (s *size) Set(v string) error {
	mult := int64(1)
	if n := len(v); n > 0 {
		if i := strings.IndexByte("KMG", v[n-1]); i >= 0 {
			mult, v = 1<<(10*(i+1)), v[:n-1]
		}
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil || n < 0 || n > (1<<50)/mult {
		return errors.New("bad size")
	}
	*s = size(n * mult)
	return nil
}

func run(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("netdumpload", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var (
		server   = fs.String("server", "127.0.26.1:20023", "the server's HERALD address")
		first    = fs.String("client", "127.0.26.10", "first client address; session i sends from the i-th address after it")
		ackPort  = fs.Uint("ackport", wire.ClientPort, "client port: sessions send from it and get ACKs on it")
		sessions = fs.Int("sessions", 1, "concurrent dumps")
		payload  = fs.Int("payload", 1448, "VMCORE payload bytes per message")
		window   = fs.Int("window", 64, "messages in flight per session")
		rto      = fs.Duration("rto", 200*time.Millisecond, "retransmission timeout")
		dir      = fs.String("dir", "", "the server's dump directory: verify the files there")
		keep     = fs.Bool("keep", false, "keep the verified dump files (default: remove them)")
		pid      = fs.Int("pid", 0, "the server's process id, when it is not started here")
		label    = fs.String("label", "server", "name printed with the figures")
		verbose  = fs.Bool("v", false, "pass the server's output through")
		trains   = fs.Bool("trains", true, "send runs of messages with UDP segmentation offload (one datagram per message on the wire, less client CPU)")
		lists    = fs.Bool("lists", false, "ask for ACK lists, as tamadump's client does (FreeBSD's client and servers do not)")
		dumpSize = size(64 << 20)
	)
	fs.Var(&dumpSize, "size", "vmcore bytes per session (K, M, G suffixes)")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	fail := func(format string, a ...any) int {
		fmt.Fprintf(stderr, "netdumpload: "+format+"\n", a...)
		return 1
	}
	srv, err := netip.ParseAddrPort(*server)
	if err != nil {
		return fail("-server: %v", err)
	}
	base, err := netip.ParseAddr(*first)
	if err != nil || !base.Is4() {
		return fail("-client: not an IPv4 address")
	}
	if *sessions < 1 || *ackPort == 0 || *ackPort > 65535 {
		return fail("bad -sessions or -ackport")
	}

	var cmd *exec.Cmd
	if fs.NArg() > 0 {
		cmd = exec.Command(fs.Arg(0), fs.Args()[1:]...)
		if *verbose {
			cmd.Stdout, cmd.Stderr = stderr, stderr
		}
		if err := cmd.Start(); err != nil {
			return fail("%v", err)
		}
		defer func() {
			cmd.Process.Signal(syscall.SIGTERM)
			done := make(chan struct{})
			go func() { cmd.Wait(); close(done) }()
			select {
			case <-done:
			case <-time.After(10 * time.Second):
				cmd.Process.Kill()
				<-done
			}
		}()
		*pid = cmd.Process.Pid
		ready := time.Now().Add(10 * time.Second)
		for !loadgen.Listening(srv) {
			if time.Now().After(ready) {
				return fail("%s does not listen at %s", fs.Arg(0), srv)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}

	locals := make([]netip.AddrPort, *sessions)
	seeds := make([]uint64, *sessions)
	ip := base
	for i := range locals {
		locals[i] = netip.AddrPortFrom(ip, uint16(*ackPort))
		seeds[i] = uint64(i + 1)
		ip = ip.Next()
	}
	var cpu0 time.Duration
	if *pid > 0 {
		if cpu0, err = loadgen.CPUTime(*pid); err != nil {
			return fail("%v", err)
		}
	}
	udp0, _ := loadgen.ReadUDPCounters()
	// The generator's own CPU: on loopback the receiving stack's softirq
	// work runs in the sender's context, so it is counted here too.
	self0, err := loadgen.CPUTime(os.Getpid())
	if err != nil {
		return fail("%v", err)
	}

	results := make([]loadgen.Result, *sessions)
	errs := make([]error, *sessions)
	var mu sync.Mutex
	var drops uint64
	unknownDrops := 0
	var wg sync.WaitGroup
	start := time.Now()
	for i := range *sessions {
		wg.Add(1)
		go func() {
			defer wg.Done()
			cfg := loadgen.Session{
				Local: locals[i], Server: srv, Size: int64(dumpSize), Payload: *payload, Window: *window,
				Seed: seeds[i], RTO: *rto, Trains: *trains, Lists: *lists,
				BeforeFinish: func(data netip.AddrPort) {
					d, ok := loadgen.SocketDrops(data, locals[i])
					mu.Lock()
					drops += d
					if !ok {
						unknownDrops++
					}
					mu.Unlock()
				},
			}
			results[i], errs[i] = loadgen.Run(cfg)
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	self1, err := loadgen.CPUTime(os.Getpid())
	if err != nil {
		return fail("%v", err)
	}
	var cpu time.Duration
	if *pid > 0 {
		cpu1, err := loadgen.CPUTime(*pid)
		if err != nil {
			return fail("%v", err)
		}
		cpu = cpu1 - cpu0
	}
	udp, _ := loadgen.ReadUDPCounters()
	udp = udp.Sub(udp0)

	code := 0
	var msgs, retrans int64
	for i, r := range results {
		msgs += r.Sent
		retrans += r.Retransmits
		if errs[i] != nil {
			fmt.Fprintf(stderr, "netdumpload: session %d (%s): %v\n", i, locals[i].Addr(), errs[i])
			code = 1
		}
	}
	verified := 0
	if *dir != "" {
		verified = verify(*dir, locals, seeds, int64(dumpSize), errs, *keep, stderr)
		if verified != *sessions {
			code = 1
		}
	}
	total := float64(int64(dumpSize) * int64(*sessions))
	line := fmt.Sprintf("netdumpload: %s sessions=%d size=%d payload=%d window=%d elapsed=%.3fs MB/s=%.1f msgs=%d retransmits=%d",
		*label, *sessions, int64(dumpSize), *payload, *window, elapsed.Seconds(), total/elapsed.Seconds()/1e6, msgs, retrans)
	if *pid > 0 && msgs > 0 {
		line += fmt.Sprintf(" server-cpu=%.3fs cpu-us/msg=%.3f", cpu.Seconds(), float64(cpu.Microseconds())/float64(msgs))
	}
	line += fmt.Sprintf(" load-cpu=%.3fs", (self1 - self0).Seconds())
	// A socket not found leaves its drops unmeasured: said apart.
	line += fmt.Sprintf(" socket-drops=%d sockets-not-found=%d", drops, unknownDrops)
	line += fmt.Sprintf(" host-RcvbufErrors=%d host-InErrors=%d", udp.RcvbufErrors, udp.InErrors)
	if *dir != "" {
		line += fmt.Sprintf(" verified=%d/%d", verified, *sessions)
	}
	fmt.Fprintln(stdout, line)
	return code
}

// verify checks each completed session's vmcore against what it sent and
// counts the exact ones; two at a time, as hashing is CPU-bound.
func verify(dir string, locals []netip.AddrPort, seeds []uint64, size int64, errs []error, keep bool, stderr io.Writer) int {
	var mu sync.Mutex
	ok := 0
	sem := make(chan struct{}, 2)
	var wg sync.WaitGroup
	for i := range locals {
		if errs[i] != nil {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			sem <- struct{}{}
			defer func() { <-sem }()
			core, info, err := loadgen.FindDump(dir, locals[i].Addr())
			if err == nil {
				var sum string
				sent := loadgen.Digest(seeds[i], size)
				if sum, err = loadgen.HashFile(core); err == nil && sum != sent {
					err = fmt.Errorf("%s: SHA-256 %s, sent %s", core, sum, sent)
				}
				if err == nil {
					err = checkInfo(info, sent)
				}
				if err == nil && !keep {
					os.Remove(core)
				}
			}
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				fmt.Fprintf(stderr, "netdumpload: session %d: %v\n", i, err)
				return
			}
			ok++
		}()
	}
	wg.Wait()
	return ok
}

// checkInfo: the info file says the dump is complete, and when it has a
// SHA256 line (tamadump's netdumpd) that it is the sent one, or not
// computed as netdumpd -no-digest says.
func checkInfo(path, sum string) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	text := string(b)
	if !strings.Contains(text, "Dump complete\n") {
		return fmt.Errorf("%s: not complete:\n%s", path, text)
	}
	if i := strings.Index(text, "SHA256: "); i >= 0 && !strings.HasPrefix(text[i+8:], sum+"\n") && !strings.HasPrefix(text[i+8:], "not computed (netdumpd -no-digest)") {
		return fmt.Errorf("%s: info's SHA256 is not %s:\n%s", path, sum, text)
	}
	return nil
}
