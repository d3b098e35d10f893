package server

import (
	"os/exec"
	"sync"
	"syscall"
)

// reason says how a dump ended: the handler's reasons, and stopped (by
// Close, or found in progress after a restart), which the handler and
// Ended see as "timeout".
type reason string

const (
	success reason = "success" // FINISHED: the dump is complete
	timeout reason = "timeout" // the client went silent
	failed  reason = "error"   // a write error or a limit ended it
	stopped reason = "stopped"
)

func (r reason) handler() string {
	if r == stopped {
		return string(timeout)
	}
	return string(r)
}

// endedEvent is a queued Ended with what the handler script needs.
type endedEvent struct {
	Ended
	why        reason
	info, core string // dumpdir-relative, as the handler gets them
}

// events runs the reactions to dumps ending, in order, on a goroutine of
// its own: metrics, the handler script, Config.Ended. A session only
// queues its event, so whatever a reaction does never slows the UDP
// path. Dumps end rarely; the queue is not bounded.
type events struct {
	mu     sync.Mutex
	cond   *sync.Cond
	queue  []endedEvent
	closed bool
	done   chan struct{}
}

func (s *Server) startEvents() {
	e := &s.events
	e.cond = sync.NewCond(&e.mu)
	e.done = make(chan struct{})
	go s.deliver()
}

// ended queues ev.
func (s *Server) ended(ev endedEvent) {
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
		e.queue[0] = endedEvent{}
		e.queue = e.queue[1:]
		e.mu.Unlock()

		s.metrics.dumps.WithLabelValues(string(ev.why)).Inc()
		if !ev.Recovered {
			s.runHandler(ev.why.handler(), ev.Client.String(), ev.Host, ev.info, ev.core)
		}
		if s.cfg.Ended != nil {
			s.cfg.Ended(ev.Ended)
		}
	}
}

// stopEvents lets the queue drain and waits for it.
func (s *Server) stopEvents() {
	e := &s.events
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
