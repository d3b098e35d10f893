package server

import (
	"context"
	"net/netip"
	"os/exec"
	"sync"
	"syscall"

	"github.com/tamadump/tamadump/netdump/wire"
)

// Reason says how a dump ended; the first three are netdumpd's handler
// reasons.
type Reason string

const (
	Success Reason = "success" // FINISHED: the dump is complete
	Timeout Reason = "timeout" // the client went silent
	Failed  Reason = "error"   // a write error or a limit ended it
	// Stopped: netdumpd was stopped during the dump (Close), or a
	// restarted netdumpd found it left in progress. The handler script
	// sees "timeout", as with netdumpd.
	Stopped Reason = "stopped"
)

// DumpEnded describes a dump that ended. Paths are relative to Dir, as
// the handler script gets them ("./info.host.0"); Core and Key are empty
// when there is no such file.
type DumpEnded struct {
	Reason Reason
	Client netip.Addr // invalid when a restart found the dump and its first line was unreadable
	Host   string
	Dir    string // the dump directory, absolute
	Info   string
	Core   string
	Key    string
	// Received is the number of VMCORE payload bytes received (0 for a
	// dump found after a restart).
	Received uint64
	// Header is the kernel dump header, when one came.
	Header *wire.KernelDumpHeader
	// Recovered: a restarted netdumpd found this dump left in progress
	// (the handler script is not run for it).
	Recovered bool
}

// events runs the reactions to dumps ending, in order, on a goroutine of
// its own: the handler script, metrics, Config.DumpEnded. A session only
// queues its event, so whatever a reaction does (a core analysis) never
// slows the UDP path.
type events struct {
	mu     sync.Mutex
	cond   *sync.Cond
	queue  []DumpEnded
	closed bool
	done   chan struct{}
	ctx    context.Context
	cancel context.CancelFunc
}

func (s *Server) startEvents() {
	e := &s.events
	e.cond = sync.NewCond(&e.mu)
	e.done = make(chan struct{})
	e.ctx, e.cancel = context.WithCancel(context.Background())
	go s.deliver()
}

// ended queues ev.
func (s *Server) ended(ev DumpEnded) {
	e := &s.events
	e.mu.Lock()
	e.queue = append(e.queue, ev)
	e.cond.Signal()
	e.mu.Unlock()
}

func (s *Server) deliver() {
	e := &s.events
	defer close(e.done)
	for {
		e.mu.Lock()
		for len(e.queue) == 0 && !e.closed {
			e.cond.Wait()
		}
		if len(e.queue) == 0 {
			e.mu.Unlock()
			return
		}
		ev := e.queue[0]
		e.queue[0] = DumpEnded{}
		e.queue = e.queue[1:]
		e.mu.Unlock()

		s.metrics.dumps.WithLabelValues(string(ev.Reason)).Inc()
		if !ev.Recovered {
			reason := ev.Reason
			if reason == Stopped {
				reason = Timeout
			}
			s.runHandler(string(reason), ev.Client.String(), ev.Host, ev.Info, ev.Core)
		}
		if s.cfg.DumpEnded != nil {
			s.cfg.DumpEnded(e.ctx, ev)
		}
	}
}

// stopEvents cancels the context of reactions under way, lets the queue
// drain and waits for it.
func (s *Server) stopEvents() {
	e := &s.events
	e.cancel()
	e.mu.Lock()
	e.closed = true
	e.cond.Signal()
	e.mu.Unlock()
	<-e.done
}

// runHandler starts the -i script without waiting for it.
func (s *Server) runHandler(reason, ip, host, info, core string) {
	if s.cfg.Handler == "" {
		return
	}
	cmd := exec.Command(s.cfg.Handler, reason, ip, host, info, core)
	cmd.Env = []string{}
	cmd.Dir = s.cfg.Dir
	if err := cmd.Start(); err != nil {
		s.logf(LevelError, "netdump_cap_handler(): %s", strerror(err))
		return
	}
	s.handlerWG.Add(1)
	go func() {
		defer s.handlerWG.Done()
		cmd.Wait()
		status := int(cmd.ProcessState.Sys().(syscall.WaitStatus))
		if status == 0 {
			s.logf(LevelInfo, "Process %d exited with status 0", cmd.Process.Pid)
		} else {
			s.logf(LevelWarning, "Process %d exited with status %d", cmd.Process.Pid, status)
		}
	}()
}
