//go:build tamago && amd64

package tamago

import (
	"sync"
	"time"
)

// MsgBufSize is the size of the kept console output (like FreeBSD's msgbuf).
const MsgBufSize = 64 << 10

var (
	msgBuf [MsgBufSize]byte
	msgPos uint64 // bytes ever logged
)

// logByte has no calls (no preemption point) so, on the single CPU, runtime
// prints and Console writes never corrupt the ring, whatever interleaving.
func logByte(c byte) {
	msgBuf[msgPos%MsgBufSize] = c
	msgPos++
}

// MsgBuf copies the most recent console output (runtime prints and Console
// writes), oldest byte first, into dst and returns the number of bytes
// copied: min(len(dst), MsgBufSize, bytes ever written). It does not
// allocate and can be used from the crash handler.
func MsgBuf(dst []byte) int {
	total := msgPos
	n := uint64(len(dst))
	n = min(n, total, MsgBufSize)
	start := total - n
	for i := uint64(0); i < n; i++ {
		dst[i] = msgBuf[(start+i)%MsgBufSize]
	}
	return int(n)
}

// SerialConsole is the COM1 UART. Output is also kept in the message buffer.
type SerialConsole struct {
	mu sync.Mutex
}

// Console is the board console.
var Console = &SerialConsole{}

// Write writes p to the UART and the message buffer. After a crash it skips
// the lock (the failed goroutine may hold it) and does not allocate.
func (c *SerialConsole) Write(p []byte) (int, error) {
	locked := crashDepth == 0
	if locked {
		c.mu.Lock()
	}
	for _, b := range p {
		UART0.Tx(b)
		logByte(b)
	}
	if locked {
		c.mu.Unlock()
	}
	return len(p), nil
}

// WriteString is Write for strings, without conversion.
func (c *SerialConsole) WriteString(s string) (int, error) {
	locked := crashDepth == 0
	if locked {
		c.mu.Lock()
	}
	for i := 0; i < len(s); i++ {
		UART0.Tx(s[i])
		logByte(s[i])
	}
	if locked {
		c.mu.Unlock()
	}
	return len(s), nil
}

// ReadByte blocks until a byte arrives on the UART. Normally it polls with
// short sleeps; after a crash (no scheduler) it busy-polls.
func (c *SerialConsole) ReadByte() (byte, error) {
	for {
		if b, ok := UART0.Rx(); ok {
			return b, nil
		}
		if crashDepth == 0 {
			time.Sleep(time.Millisecond)
		}
	}
}

// Read blocks until at least one byte is available, then returns what is
// buffered without waiting further.
func (c *SerialConsole) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	b, _ := c.ReadByte()
	p[0] = b
	n := 1
	for n < len(p) {
		b, ok := UART0.Rx()
		if !ok {
			break
		}
		p[n] = b
		n++
	}
	return n, nil
}
