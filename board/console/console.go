// Package console is a board's serial console: what is written goes to the
// UART and into a message buffer (like FreeBSD's msgbuf) that the crash
// path reads back; input comes from the UART. After a crash it takes no
// lock (the frozen goroutine may hold it) and does not sleep (there is no
// scheduler), and it never allocates.
package console

import (
	"sync"
	"time"
)

// MsgBufSize is the size of the kept output.
const MsgBufSize = 64 << 10

// UART is the serial port under the console.
type UART interface {
	Tx(c byte)
	Rx() (c byte, ok bool)
}

// Console is the serial console. Set UART and Crashed before use.
type Console struct {
	UART UART
	// Crashed reports whether the crash path is running.
	Crashed func() bool

	mu  sync.Mutex
	buf [MsgBufSize]byte
	pos uint64 // bytes ever logged
}

// Put sends b to the UART and the message buffer without locking.
func (c *Console) Put(b byte) {
	c.UART.Tx(b)
	c.Log(b)
}

// Log adds b to the message buffer only; it works on the zero Console, so
// a board's print hook (Printk, which runs before package initialisation)
// can send to its UART itself and log here. It makes no call that could
// be preempted between the two updates, so on a single CPU runtime
// prints and Writes never corrupt the ring, whatever the interleaving.
func (c *Console) Log(b byte) {
	c.buf[c.pos%MsgBufSize] = b
	c.pos++
}

func (c *Console) lock() bool {
	if c.Crashed() {
		return false
	}
	c.mu.Lock()
	return true
}

// Write writes p to the UART and the message buffer.
func (c *Console) Write(p []byte) (int, error) {
	if c.lock() {
		defer c.mu.Unlock()
	}
	for _, b := range p {
		c.Put(b)
	}
	return len(p), nil
}

// WriteString is Write for strings, without conversion.
func (c *Console) WriteString(s string) (int, error) {
	if c.lock() {
		defer c.mu.Unlock()
	}
	for i := 0; i < len(s); i++ {
		c.Put(s[i])
	}
	return len(s), nil
}

// ReadByte blocks until a byte arrives on the UART: it polls with short
// sleeps, and busy-polls after a crash.
func (c *Console) ReadByte() (byte, error) {
	for {
		if b, ok := c.UART.Rx(); ok {
			return b, nil
		}
		if !c.Crashed() {
			time.Sleep(time.Millisecond)
		}
	}
}

// Read blocks until at least one byte is available, then returns what is
// buffered without waiting further.
func (c *Console) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	p[0], _ = c.ReadByte()
	n := 1
	for ; n < len(p); n++ {
		b, ok := c.UART.Rx()
		if !ok {
			break
		}
		p[n] = b
	}
	return n, nil
}

// MsgBuf copies the most recent output, oldest byte first, into dst and
// returns how many bytes it copied: min(len(dst), MsgBufSize, bytes ever
// written). It does not allocate.
func (c *Console) MsgBuf(dst []byte) int {
	total := c.pos
	n := min(uint64(len(dst)), total, MsgBufSize)
	start := total - n
	for i := uint64(0); i < n; i++ {
		dst[i] = c.buf[(start+i)%MsgBufSize]
	}
	return int(n)
}
