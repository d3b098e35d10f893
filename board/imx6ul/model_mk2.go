//go:build tamago && arm && usbarmory

package imx6ul

import (
	"github.com/usbarmory/tamago/soc/nxp/enet"
	"github.com/usbarmory/tamago/soc/nxp/imx6ul"
	"github.com/usbarmory/tamago/soc/nxp/uart"
)

// Model is the board this build is for: the USB armory Mk II LAN (facts
// from tamago's usbarmory/mk2).
const Model = "USB armory Mk II LAN"

// consoleUART is UART2, the Mk II's debug accessory port (QEMU's second
// serial port). A function, not a variable: Printk and Hwinit1 run before
// package initialisation.
func consoleUART() *uart.UART { return imx6ul.UART2 }

func modelInit() {}

// reboot power-cycles the board: watchdog 2's software reset drives the
// PMIC's reset input.
func reboot() {
	for i := 0; i < 3; i++ {
		imx6ul.WDOG2.SoftwareReset()
		spin()
	}
}

// ethernetPort is ENET2: RMII on the ENET2 pins, the 50 MHz reference
// clock in through ENET2_TX_CLK (ALT4, software input on), MDIO/MDC on
// GPIO1_IO06/07 in their ENET2 function (ALT1), a TI DP83825 PHY at MDIO
// address 0. The MAC fuses hold the board's model, not an address.
func ethernetPort() port {
	return port{hw: imx6ul.ENET2, regs: imx6ul.ENET2_BASE, name: "ENET2", phy: dp83825, pads: []pad{
		{mux: 0x020e00e4, pad: 0x020e0370, fast: true},                                        // ENET2_RX_DATA0
		{mux: 0x020e00e8, pad: 0x020e0374, fast: true},                                        // ENET2_RX_DATA1
		{mux: 0x020e00ec, pad: 0x020e0378, fast: true},                                        // ENET2_RX_EN
		{mux: 0x020e00f0, pad: 0x020e037c, fast: true},                                        // ENET2_TX_DATA0
		{mux: 0x020e00f4, pad: 0x020e0380, fast: true},                                        // ENET2_TX_DATA1
		{mux: 0x020e00f8, pad: 0x020e0384, fast: true},                                        // ENET2_TX_EN
		{mux: 0x020e00fc, pad: 0x020e0388, daisy: 0x020e057c, mode: 4, sel: 0b10, sion: true}, // ENET2_TX_CLK: REF_CLK2
		{mux: 0x020e0100, pad: 0x020e038c, fast: true},                                        // ENET2_RX_ER
		{mux: 0x020e0074, pad: 0x020e0300, daisy: 0x020e0580, mode: 1, fast: true},            // GPIO1_IO06: ENET2_MDIO
		{mux: 0x020e0078, pad: 0x020e0304, mode: 1, fast: true},                               // GPIO1_IO07: ENET2_MDC
	}}
}

// dp83825 resets the PHY and sets it to 100 Mbps full duplex with
// autonegotiation, the 50 MHz RMII reference clock and a 2-bit receive
// elastic buffer.
func dp83825(eth *enet.ENET) {
	const addr, rcsr = 0, 0x17
	eth.WritePHYRegister(addr, phyCtrl, ctrlReset)
	eth.WritePHYRegister(addr, phyCtrl, ctrlSpeed100|ctrlANeg|ctrlFullDuplex)
	eth.WritePHYRegister(addr, rcsr, 1<<7|1<<0)
}
