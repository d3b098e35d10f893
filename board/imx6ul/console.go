//go:build tamago && arm

package imx6ul

import (
	_ "unsafe" // go:linkname

	"github.com/tamadump/tamadump/board/console"
)

// Console is the board's serial console (see consoleUART), with the
// message buffer the crash path reads.
var Console = &cons

// cons is a value, usable by printk before package initialisation sets
// its UART.
var cons console.Console

func init() {
	cons.UART = consoleUART()
	cons.Crashed = func() bool { return crashDepth != 0 }
}

// MsgBuf copies the newest console output into dst, oldest first.
func MsgBuf(dst []byte) int { return cons.MsgBuf(dst) }

// printk is the runtime's output: the console UART and the message buffer.
//
//go:linkname printk runtime/goos.Printk
func printk(c byte) {
	consoleUART().Tx(c)
	cons.Log(c)
}
