//go:build tamago && arm

package imx6ul

import (
	_ "unsafe" // go:linkname

	"github.com/tamadump/tamadump/board/console"
	"github.com/usbarmory/tamago/soc/nxp/imx6ul"
)

// Console is UART1 (the EVK's debug USB port, the first serial port under
// QEMU), with the message buffer the crash path reads.
var Console = &cons

// cons is a value, usable by printk before package initialisation sets
// its UART.
var cons console.Console

func init() {
	cons.UART = imx6ul.UART1
	cons.Crashed = func() bool { return crashDepth != 0 }
}

// MsgBuf copies the newest console output into dst, oldest first.
func MsgBuf(dst []byte) int { return cons.MsgBuf(dst) }

// printk is the runtime's output: UART1 and the message buffer.
//
//go:linkname printk runtime/goos.Printk
func printk(c byte) {
	imx6ul.UART1.Tx(c)
	cons.Log(c)
}
