//go:build tamago && amd64

package tamago

import "github.com/tamadump/tamadump/board/console"

// MsgBufSize is the size of the kept console output (like FreeBSD's msgbuf).
const MsgBufSize = console.MsgBufSize

// Console is the board console: COM1, with the message buffer the crash
// path reads. After a crash it takes no lock and does not sleep.
var Console = &cons

// cons is a value, usable by printk before package initialisation sets
// its UART.
var cons console.Console

func init() {
	cons.UART = UART0
	cons.Crashed = func() bool { return crashDepth != 0 }
}

// MsgBuf copies the most recent console output (runtime prints and Console
// writes), oldest byte first, into dst and returns the number of bytes
// copied. It does not allocate and can be used from the crash handler.
func MsgBuf(dst []byte) int { return cons.MsgBuf(dst) }
