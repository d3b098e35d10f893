//go:build tamago && arm

package imx6ul

import (
	"errors"
	"fmt"
	"net"
	"net/netip"

	"github.com/tamadump/tamadump/drivers/bus"
	"github.com/tamadump/tamadump/drivers/imxenet"
	"github.com/tamadump/tamadump/mbufpool"
	ienet "github.com/usbarmory/imx-enet"
	"github.com/usbarmory/tamago/soc/nxp/enet"
	"github.com/usbarmory/tamago/soc/nxp/imx6ul"
	"github.com/usbarmory/tamago/soc/nxp/iomuxc"

	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/adapters/gonet"
	"gvisor.dev/gvisor/pkg/tcpip/network/arp"
	"gvisor.dev/gvisor/pkg/tcpip/network/ipv4"
	"gvisor.dev/gvisor/pkg/tcpip/stack"
)

// Ethernet is the board's Ethernet controller (ENET1 on QEMU and the
// EVK): in normal operation tamago's soc/nxp/enet under imx-enet with
// gVisor's network stack, answering ping and UDP echo on port 7; after a
// crash drivers/imxenet, prepared in advance (Standby) with rings and
// buffers in the DMA region, takes it over (NIC.Reset).
type Ethernet struct {
	Name string // FreeBSD's name for the i.MX FEC/ENET driver: ffec0
	Desc string // what and where, for the boot log
	// MAC is the station address both drivers use.
	MAC [6]byte
	// NIC is the crash-time driver; Reset takes the controller over.
	NIC *imxenet.NIC
	// Iface is imx-enet's interface, once Start ran.
	Iface *ienet.Interface

	hw   *enet.ENET
	regs uint64
}

// NewEthernet chooses the station address (see mac) and prepares the
// crash-time driver with its rings and buffers carved from dma. It
// touches no ENET register but the address ones, which it reads.
func NewEthernet(dma bus.DMA) (*Ethernet, error) {
	e := &Ethernet{Name: "ffec0", hw: imx6ul.ENET1, regs: imx6ul.ENET1_BASE}
	if e.hw == nil {
		return nil, errors.New("imx6ul board: this SoC has no ENET1")
	}
	e.MAC = e.mac()
	e.Desc = fmt.Sprintf("i.MX ENET1 at %#x", e.regs)
	rings, rest, err := dma.Carve(imxenet.RingBytes+imxenet.RingAlign, imxenet.RingAlign)
	if err != nil {
		return nil, err
	}
	bufs, _, err := rest.Carve(imxenet.BuffersNeeded*imxenet.BufSize+mbufpool.Align, mbufpool.Align)
	if err != nil {
		return nil, err
	}
	pool, err := mbufpool.New(bufs, imxenet.BufSize)
	if err != nil {
		return nil, err
	}
	if e.NIC, err = imxenet.Standby(bus.Direct{}, e.regs, rings, pool, e.MAC); err != nil {
		return nil, err
	}
	return e, nil
}

// mac is the station address: what PALR/PAUR hold (QEMU's -net nic
// macaddr=, or a boot loader's), else the MAC fuses (OCOTP_MAC1 bits 15:0
// and OCOTP_MAC0, as U-Boot reads them for ENET1), else a locally
// administered address made from the SoC's unique ID.
func (e *Ethernet) mac() [6]byte {
	var d bus.Direct
	// The controller's clock gate must be open to read its registers.
	d.Write32(imx6ul.CCM_CCGR0, d.Read32(imx6ul.CCM_CCGR0)|0b11<<imx6ul.CCGRx_CG6)
	l, u := d.Read32(e.regs+0xe4), d.Read32(e.regs+0xe8)
	m := [6]byte{byte(l >> 24), byte(l >> 16), byte(l >> 8), byte(l), byte(u >> 24), byte(u >> 16)}
	if m[0]&1 == 0 && m != [6]byte{} {
		return m
	}
	mac0, _ := imx6ul.OCOTP.Read(4, 2)
	mac1, _ := imx6ul.OCOTP.Read(4, 3)
	m = [6]byte{byte(mac1 >> 8), byte(mac1), byte(mac0 >> 24), byte(mac0 >> 16), byte(mac0 >> 8), byte(mac0)}
	if m[0]&1 == 0 && m != [6]byte{} {
		return m
	}
	uid := imx6ul.UniqueID()
	return [6]byte{0x02, uid[1] ^ uid[5], uid[2] ^ uid[6], uid[3] ^ uid[7], uid[0], uid[4]}
}

// Start brings the controller up under imx-enet with addr (gateway gw, if
// valid): the pads and the PHY as the EVK needs them, gVisor's stack,
// ICMP echo, and a UDP echo service on port 7. Frames are received by a
// polling goroutine (imx-enet masks the controller's interrupts).
func (e *Ethernet) Start(addr netip.Prefix, gw netip.Addr) error {
	if !addr.Addr().Is4() {
		return fmt.Errorf("imx6ul board: %v is not an IPv4 prefix", addr)
	}
	e.hw.RMII = true
	e.hw.EnablePHY = enablePHY
	mask := net.IP(net.CIDRMask(addr.Bits(), 32)).String()
	gateway := "0.0.0.0"
	if gw.Is4() {
		gateway = gw.String()
	}
	// gVisor drops frames with loopback sources as martians; allow them,
	// for test networks in user space that use loopback-range addresses.
	opts := ienet.DefaultStackOptions
	opts.NetworkProtocols = []stack.NetworkProtocolFactory{
		ipv4.NewProtocolWithOptions(ipv4.Options{AllowExternalLoopbackTraffic: true}), arp.NewProtocol}
	e.Iface = &ienet.Interface{Stack: stack.New(opts)}
	if err := e.Iface.Init(e.hw, addr.Addr().String(), mask, net.HardwareAddr(e.MAC[:]).String(), gateway); err != nil {
		return fmt.Errorf("imx-enet: %w", err)
	}
	if err := e.Iface.EnableICMP(); err != nil {
		return fmt.Errorf("imx-enet: %w", err)
	}
	go e.hw.Start(true)
	// imx-enet's DialUDP4 with no remote address connects to 0.0.0.0:0
	// and receives nothing; gVisor's DialUDP with only a local one does.
	local := tcpip.FullAddress{NIC: e.Iface.NICID, Addr: tcpip.AddrFrom4(addr.Addr().As4()), Port: 7}
	echo, err := gonet.DialUDP(e.Iface.Stack, &local, nil, ipv4.ProtocolNumber)
	if err != nil {
		return fmt.Errorf("udp echo: %v", err)
	}
	go func() {
		buf := make([]byte, 2048)
		for {
			n, from, err := echo.ReadFrom(buf)
			if err != nil {
				return
			}
			echo.WriteTo(buf[:n], from) //nolint:errcheck // a lost echo is a lost datagram
		}
	}()
	return nil
}

// The EVK's ENET1 (facts from tamago's nxp/mx6ullevk): RMII pads on the
// ENET1 pins, the 50 MHz reference clock in through ENET1_TX_CLK (ALT4,
// software input on), MDIO/MDC on GPIO1_IO06/07, and a KSZ8081RNB PHY at
// MDIO address 2. QEMU's model ignores the pad writes and the PHY's
// vendor registers.
const (
	phyAddr = 2

	kszCtrl     = 0x00 // basic control
	kszPHYCtrl2 = 0x1f

	ctrlReset, ctrlSpeed100, ctrlFullDuplex = 1 << 15, 1 << 13, 1 << 8
	ctrl2HPMDIX, ctrl2RMII50MHz, ctrl2LEDs  = 1 << 15, 1 << 7, 1 << 4
)

type pad struct {
	mux, pad, daisy uint32
	mode            uint32
	fast            bool   // 100 MHz pad, else 50 MHz
	sel             uint32 // daisy-chain input
	sion            bool
}

var enet1Pads = []pad{
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
}

// enablePHY is soc/nxp/enet's EnablePHY hook: pads, then the PHY reset
// and set to 100 Mbps full duplex, RMII with a 50 MHz clock.
func enablePHY(eth *enet.ENET) error {
	for _, p := range enet1Pads {
		speed := uint32(iomuxc.SW_PAD_CTL_SPEED_50MHZ)
		if p.fast {
			speed = iomuxc.SW_PAD_CTL_SPEED_100MHZ
		}
		io := &iomuxc.Pad{Mux: p.mux, Pad: p.pad, Daisy: p.daisy}
		io.Mode(p.mode)
		io.Ctl(iomuxc.SW_PAD_CTL_DSE_2_R0_6<<iomuxc.SW_PAD_CTL_DSE | speed<<iomuxc.SW_PAD_CTL_SPEED |
			1<<iomuxc.SW_PAD_CTL_PUE | 1<<iomuxc.SW_PAD_CTL_PKE |
			iomuxc.SW_PAD_CTL_PUS_PULL_UP_100K<<iomuxc.SW_PAD_CTL_PUS | 1<<iomuxc.SW_PAD_CTL_HYS)
		io.Select(p.sel)
		if p.sion {
			io.SoftwareInput(true)
		}
	}
	eth.WritePHYRegister(phyAddr, kszCtrl, ctrlReset)
	eth.WritePHYRegister(phyAddr, kszPHYCtrl2, ctrl2HPMDIX|ctrl2RMII50MHz|ctrl2LEDs)
	eth.WritePHYRegister(phyAddr, kszCtrl, ctrlSpeed100|ctrlFullDuplex)
	return nil
}
