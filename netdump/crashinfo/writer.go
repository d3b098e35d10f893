package crashinfo

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/tamadump/tamadump/netdump/server"
)

// Defaults of Config.
const (
	DefaultTimeout   = 2 * time.Minute
	DefaultMaxMemory = 2 << 30
	// MaxReport bounds a core.txt; the rest of a longer report is
	// dropped, and the file says so.
	MaxReport = 16 << 20
	// queue is how many complete dumps may wait for their analysis; a
	// dump beyond that gets a core.txt that says it was not analysed.
	queue = 16
)

// Config configures a Writer.
type Config struct {
	// Symbols is the symbols directory images are looked up in.
	Symbols string
	// Command starts the analysis: Main's arguments are appended
	// (netdumpd runs itself as "netdumpd crashinfo").
	Command []string
	// Env is added to the analysis's environment.
	Env []string
	// Timeout and MaxMemory bound each analysis: it is killed after
	// Timeout, and its address space is limited to MaxMemory bytes.
	Timeout   time.Duration
	MaxMemory uint64
	// Log receives a line for each report, in netdumpd's log.
	Log func(server.Level, string)
	// Written, if set, is called with the path of each report written.
	Written func(path string)
}

// Writer writes core.txt.<host>.<n> beside each complete dump, and links
// core.txt.<host>.last to it, as crashinfo(8) does after savecore. One
// analysis runs at a time, in its own process, off the server's path.
type Writer struct {
	cfg    Config
	mu     sync.Mutex // jobs against Close
	closed bool
	jobs   chan server.Ended
	ctx    context.Context
	cancel context.CancelFunc
	done   chan struct{}
}

// NewWriter starts a Writer; its Ended goes into server.Config.Ended.
func NewWriter(cfg Config) *Writer {
	if cfg.Timeout <= 0 {
		cfg.Timeout = DefaultTimeout
	}
	if cfg.MaxMemory == 0 {
		cfg.MaxMemory = DefaultMaxMemory
	}
	if cfg.Log == nil {
		cfg.Log = func(server.Level, string) {}
	}
	w := &Writer{cfg: cfg, jobs: make(chan server.Ended, queue), done: make(chan struct{})}
	w.ctx, w.cancel = context.WithCancel(context.Background())
	go w.work()
	return w
}

// Ended queues the analysis of a complete dump. It does not wait for it.
func (w *Writer) Ended(e server.Ended) {
	if e.Reason != "success" {
		return
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.closed {
		w.write(e, nil, "not analysed: netdumpd is shutting down")
		return
	}
	select {
	case w.jobs <- e:
	default:
		w.write(e, nil, fmt.Sprintf("not analysed: %d dumps were already waiting for their analysis", queue))
	}
}

// Close stops the running analysis and writes the reports of the queued
// ones, and of dumps that end later, as not analysed.
func (w *Writer) Close() {
	w.cancel()
	w.mu.Lock()
	if !w.closed {
		w.closed = true
		close(w.jobs)
	}
	w.mu.Unlock()
	<-w.done
}

func (w *Writer) work() {
	defer close(w.done)
	for e := range w.jobs {
		out, status := w.analyse(e)
		w.write(e, out, status)
	}
}

// analyse runs the analysis of e and returns what it printed and, when it
// did not end well, what happened.
func (w *Writer) analyse(e server.Ended) ([]byte, string) {
	if w.ctx.Err() != nil {
		return nil, "not analysed: netdumpd is shutting down"
	}
	if len(w.cfg.Command) == 0 {
		return nil, "not analysed: no analysis command is configured"
	}
	args := append([]string{}, w.cfg.Command[1:]...)
	if w.cfg.Symbols != "" {
		args = append(args, "-symbols", abs(w.cfg.Symbols))
	}
	cpu := uint64(w.cfg.Timeout.Seconds()) + 1
	args = append(args, "-info", abs(filepath.Join(e.Dir, e.Info)),
		"-max-memory", strconv.FormatUint(w.cfg.MaxMemory, 10), "-max-cpu", strconv.FormatUint(cpu, 10),
		abs(filepath.Join(e.Dir, e.Core)))

	ctx, cancel := context.WithTimeout(w.ctx, w.cfg.Timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, w.cfg.Command[0], args...)
	cmd.Env = append(os.Environ(), w.cfg.Env...)
	out := &capped{max: MaxReport}
	errHead := &capped{max: 64 << 10}
	cmd.Stdout, cmd.Stderr = out, errHead
	// Its own process group, killed whole; and killed with netdumpd.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = time.Second
	err := cmd.Run()

	status := ""
	var ee *exec.ExitError
	switch {
	case err == nil:
	case errors.Is(ctx.Err(), context.DeadlineExceeded):
		status = fmt.Sprintf("the analysis did not finish within %v and was killed", w.cfg.Timeout)
	case w.ctx.Err() != nil:
		status = "the analysis was stopped: netdumpd is shutting down"
	case errors.As(err, &ee):
		if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			status = fmt.Sprintf("the analysis was killed by %v", ws.Signal())
		} else {
			status = fmt.Sprintf("the analysis failed (exit status %d)", ee.ExitCode())
		}
		if line := firstLine(errHead.b.String()); line != "" {
			status += ": " + line
		}
		// Running out of address space kills a Go program in more than
		// one way ("out of memory", "cannot allocate memory", SIGSEGV).
		status += fmt.Sprintf(" (it may use %d MiB of address space and %d s of CPU)", w.cfg.MaxMemory>>20, cpu)
	default:
		status = "the analysis could not start: " + err.Error()
	}
	if out.dropped > 0 {
		status = strings.TrimPrefix(status+fmt.Sprintf("; the report was cut at %d bytes", MaxReport), "; ")
	}
	return out.b.Bytes(), status
}

// write stores the report of e: the analysis's output, then status, a
// line saying how it ended badly, if it did.
func (w *Writer) write(e server.Ended, out []byte, status string) {
	name := fmt.Sprintf("core.txt.%s.%d", e.Host, e.Index)
	report := out
	if len(out) == 0 {
		report = fmt.Appendf(nil, "%s: no report\n", abs(filepath.Join(e.Dir, e.Core)))
	}
	if status != "" {
		if !bytes.HasSuffix(report, []byte("\n")) {
			report = append(report, '\n')
		}
		report = append(report, fmt.Sprintf("\n%serror: %s\n", Rule, status)...)
	}
	path := filepath.Join(e.Dir, name)
	if err := writeFile(e.Dir, name, report); err != nil {
		w.cfg.Log(server.LevelError, fmt.Sprintf("crashinfo: writing %s: %v", path, err))
		return
	}
	if err := relink(e.Dir, "core.txt."+e.Host+".last", name); err != nil {
		w.cfg.Log(server.LevelError, fmt.Sprintf("crashinfo: linking core.txt.%s.last: %v", e.Host, err))
	}
	if status != "" {
		w.cfg.Log(server.LevelWarning, fmt.Sprintf("crashinfo: wrote %s; %s", path, status))
	} else {
		w.cfg.Log(server.LevelInfo, "crashinfo: wrote "+path)
	}
	if w.cfg.Written != nil {
		w.cfg.Written(path)
	}
}

// writeFile writes dir/name under a temporary name first, so a report is
// whole whenever it exists.
func writeFile(dir, name string, b []byte) error {
	f, err := os.CreateTemp(dir, "."+name+".")
	if err != nil {
		return err
	}
	defer os.Remove(f.Name())
	if _, err := f.Write(b); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return os.Rename(f.Name(), filepath.Join(dir, name))
}

// relink points the symlink dir/link at target, replacing it at once.
func relink(dir, link, target string) error {
	tmp := filepath.Join(dir, "."+link+".new")
	os.Remove(tmp)
	if err := os.Symlink(target, tmp); err != nil {
		return err
	}
	return os.Rename(tmp, filepath.Join(dir, link))
}

// firstLine is the line of the analysis's standard error that says why
// it died: the Go runtime's fatal error, panic or signal, else the first
// one (Delve warns there, too).
func firstLine(s string) string {
	lines := strings.Split(s, "\n")
	for _, p := range []string{"fatal error: ", "panic: ", "SIG"} {
		for _, l := range lines {
			if strings.HasPrefix(l, p) {
				return strings.TrimSpace(l)
			}
		}
	}
	for _, l := range lines {
		if l = strings.TrimSpace(l); l != "" {
			return l
		}
	}
	return ""
}

// capped keeps the first max bytes written and counts the rest.
type capped struct {
	b       bytes.Buffer
	max     int
	dropped int
}

func (c *capped) Write(p []byte) (int, error) {
	n := min(len(p), c.max-c.b.Len())
	c.b.Write(p[:n])
	c.dropped += len(p) - n
	return len(p), nil
}
