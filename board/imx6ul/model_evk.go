//go:build tamago && arm && !usbarmory

package imx6ul

import (
	"github.com/usbarmory/tamago/soc/nxp/enet"
	"github.com/usbarmory/tamago/soc/nxp/imx6ul"
	"github.com/usbarmory/tamago/soc/nxp/iomuxc"
	"github.com/usbarmory/tamago/soc/nxp/uart"
)

// Model is the board this build is for: the NXP MCIMX6ULL-EVK, which
// QEMU's mcimx6ul-evk models (facts from tamago's nxp/mx6ullevk). Build
// with -tags usbarmory for the USB armory Mk II LAN.
const Model = "MCIMX6ULL-EVK"

// consoleUART is UART1, the EVK's debug USB port (QEMU's first serial
// port). A function, not a variable: Printk and Hwinit1 run before
// package initialisation.
func consoleUART() *uart.UART { return imx6ul.UART1 }

// modelInit routes WDOG_B out: the LCD_RESET pad in its WDOG1_WDOG_ANY
// function (ALT4), pulled up; the EVK's PMIC resets the board on it.
func modelInit() {
	p := iomuxc.Pad{Mux: 0x020e0114, Pad: 0x020e03a0}
	p.Mode(4)
	p.Ctl(1<<iomuxc.SW_PAD_CTL_HYS | 1<<iomuxc.SW_PAD_CTL_PUE | 1<<iomuxc.SW_PAD_CTL_PKE |
		iomuxc.SW_PAD_CTL_PUS_PULL_UP_22K<<iomuxc.SW_PAD_CTL_PUS |
		iomuxc.SW_PAD_CTL_SPEED_50MHZ<<iomuxc.SW_PAD_CTL_SPEED | iomuxc.SW_PAD_CTL_DSE_2_R0_6<<iomuxc.SW_PAD_CTL_DSE)
}

// reboot asserts WDOG_B through watchdog 1 (the PMIC power-cycles the
// board; QEMU resets the machine), then tries the SoC's own reset.
func reboot() {
	imx6ul.WDOG1.Reset()
	spin()
	imx6ul.Reset()
	spin()
}

// ethernetPort is ENET1: RMII on the ENET1 pins, the 50 MHz reference
// clock in through ENET1_TX_CLK (ALT4, software input on), MDIO/MDC on
// GPIO1_IO06/07, a KSZ8081RNB PHY at MDIO address 2, the MAC fuses
// holding its address. QEMU's model ignores the pads and the PHY's vendor
// registers.
func ethernetPort() port {
	return port{hw: imx6ul.ENET1, regs: imx6ul.ENET1_BASE, name: "ENET1", fuseMAC: true, phy: ksz8081, pads: []pad{
		{mux: 0x020e00c4, pad: 0x020e0350, fast: true},                                        // ENET1_RX_DATA0
		{mux: 0x020e00c8, pad: 0x020e0354, fast: true},                                        // ENET1_RX_DATA1
		{mux: 0x020e00cc, pad: 0x020e0358, fast: true},                                        // ENET1_RX_EN
		{mux: 0x020e00d0, pad: 0x020e035c, fast: true},                                        // ENET1_TX_DATA0
		{mux: 0x020e00d4, pad: 0x020e0360, fast: true},                                        // ENET1_TX_DATA1
		{mux: 0x020e00d8, pad: 0x020e0364, fast: true},                                        // ENET1_TX_EN
		{mux: 0x020e00dc, pad: 0x020e0368, daisy: 0x020e0574, mode: 4, sel: 0b10, sion: true}, // ENET1_TX_CLK: REF_CLK1
		{mux: 0x020e00e0, pad: 0x020e036c, fast: true},                                        // ENET1_RX_ER
		{mux: 0x020e0074, pad: 0x020e0300, daisy: 0x020e0578, fast: true},                     // GPIO1_IO06: MDIO
		{mux: 0x020e0078, pad: 0x020e0304, fast: true},                                        // GPIO1_IO07: MDC
	}}
}

// ksz8081 resets the PHY and sets it to HP auto MDI/MDI-X, RMII with a
// 50 MHz clock, activity/link LEDs, 100 Mbps full duplex.
func ksz8081(eth *enet.ENET) {
	const addr, phyCtrl2 = 2, 0x1f
	eth.WritePHYRegister(addr, phyCtrl, ctrlReset)
	eth.WritePHYRegister(addr, phyCtrl2, 1<<15|1<<7|1<<4)
	eth.WritePHYRegister(addr, phyCtrl, ctrlSpeed100|ctrlFullDuplex)
}
