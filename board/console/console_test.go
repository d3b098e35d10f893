package console

import (
	"bytes"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

var sink []byte

// uart records what is sent and replays queued input.
type uart struct {
	mu  sync.Mutex
	out bytes.Buffer
	in  []byte
}

func (u *uart) Tx(c byte) { u.mu.Lock(); u.out.WriteByte(c); u.mu.Unlock() }
func (u *uart) Rx() (byte, bool) {
	u.mu.Lock()
	defer u.mu.Unlock()
	if len(u.in) == 0 {
		return 0, false
	}
	b := u.in[0]
	u.in = u.in[1:]
	return b, true
}

func TestMsgBuf(t *testing.T) {
	u := &uart{}
	c := &Console{UART: u, Crashed: func() bool { return false }}
	var dst [100]byte
	if n := c.MsgBuf(dst[:]); n != 0 {
		t.Fatalf("empty console gave %d bytes", n)
	}
	c.WriteString("hello ")
	c.Write([]byte("world"))
	c.Put('!')
	if n := c.MsgBuf(dst[:]); string(dst[:n]) != "hello world!" || u.out.String() != "hello world!" {
		t.Fatalf("msgbuf %q, uart %q", dst[:n], u.out.String())
	}
	// Past the ring's size only the newest MsgBufSize bytes remain, in
	// order, and a short dst gets the newest bytes.
	long := strings.Repeat("0123456789", MsgBufSize/10+7)
	c.WriteString(long)
	all := make([]byte, 2*MsgBufSize)
	if n := c.MsgBuf(all); n != MsgBufSize || string(all[:n]) != long[len(long)-MsgBufSize:] {
		t.Fatalf("after wrapping: %d bytes", n)
	}
	if n := c.MsgBuf(dst[:10]); string(dst[:n]) != long[len(long)-10:] {
		t.Fatalf("short dst: %q", dst[:n])
	}
	if a := testing.AllocsPerRun(10, func() { c.MsgBuf(all); c.WriteString("x") }); a != 0 {
		t.Fatalf("%v allocations", a)
	}
	if a := testing.AllocsPerRun(10, func() { sink = make([]byte, 10); c.Write(sink) }); a != 1 {
		t.Fatalf("negative control: %v allocations counted, want 1", a)
	}
}

// TestCrashed: after the crash a Write goes through although the lock is
// held (by the frozen goroutine), and reading busy-polls. Before it, the
// lock serialises writers.
func TestCrashed(t *testing.T) {
	u := &uart{}
	var crashed atomic.Bool
	c := &Console{UART: u, Crashed: crashed.Load}
	c.mu.Lock() // a goroutine frozen inside Write
	done := make(chan struct{})
	go func() { c.WriteString("blocked"); close(done) }()
	select {
	case <-done:
		t.Fatal("Write ignored the lock before the crash")
	case <-time.After(20 * time.Millisecond):
	}
	crashed.Store(true)
	c.WriteString("crash")
	u.mu.Lock()
	out := u.out.String()
	u.mu.Unlock()
	if !strings.Contains(out, "crash") {
		t.Fatal("Write after the crash did not go through a held lock")
	}
	c.mu.Unlock()
	<-done
	u.mu.Lock()
	u.in = []byte("ab")
	u.mu.Unlock()
	var p [8]byte
	if n, _ := c.Read(p[:]); string(p[:n]) != "ab" {
		t.Fatalf("Read %q", p[:n])
	}
}
