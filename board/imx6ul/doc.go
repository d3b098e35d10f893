//go:build tamago && arm

// Package imx6ul is the tamadump board for the NXP i.MX6UL family under
// TamaGo (GOOS=tamago GOARCH=arm GOARM=7): QEMU's mcimx6ul-evk, and by the
// same code the MCIMX6ULL-EVK and (built with -tags usbarmory) the USB
// armory Mk II LAN; what differs between them (console UART, Ethernet
// port, pads and PHY, reset wiring) is in one file per board (model_*.go).
// It is built on tamago's soc/nxp/imx6ul and arm packages, as tamago's
// nxp/mx6ullevk and usbarmory/mk2 boards are, and takes their place.
//
// Importing the package initialises the hardware through the runtime/goos
// hooks (Hwinit1, Printk, Exit; tamago's SoC package supplies Nanotime,
// RamStart, InitRNG):
//
//   - Memory: Go owns DRAM [0x80000000, +RamSize) (58 MiB by default,
//     about 34 MiB of it bss), and a 2 MiB DMA region follows, outside the
//     Go heap and mapped uncached (see mapDMA): rings and buffers of the
//     crash-time ENET driver. tamago's global dma package stays in OCRAM
//     (0x00900000, 128 KiB, mapped as device memory), where soc/nxp/enet
//     keeps its rings in normal operation. A dump holds all three.
//   - Console: UART1 (UART2 on the Mk II), 115200 8N1, with a 64 KiB
//     message buffer (Console, MsgBuf).
//   - Time: the ARM generic timer (62.5 MHz under QEMU, the 8 MHz system
//     counter on hardware), set up by tamago.
//   - Halt: semihosting exit under QEMU (-semihosting), else wfi forever;
//     Reboot: through the watchdog as the board is wired for it.
//   - Crashes: unrecovered panics, fatal runtime errors and the ARM
//     exceptions (undefined instruction, prefetch and data abort) run the
//     function given to OnCrash on a preallocated stack (see OnCrash).
//   - Network: ENET1 (ENET2 on the Mk II LAN), see Ethernet.
//
// Build (the image's main package imports this one):
//
//	GOOS=tamago GOOSPKG=github.com/usbarmory/tamago GOARCH=arm GOARM=7 $TAMAGO build \
//	  -tags linkramsize -trimpath -ldflags "-T 0x80010000 -R 0x1000" -o image .
//
// The RAM and DMA sizes are assembler constants that can be overridden,
// e.g. -asmflags=github.com/tamadump/tamadump/board/imx6ul=-D=RAM_SIZE=0x8000000
// (the DMA region must start and end on 1 MiB boundaries). The machine
// needs RamSize plus the DMA size of DRAM (MinRAMMiB with the defaults).
package imx6ul
