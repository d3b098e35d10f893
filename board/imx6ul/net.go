//go:build tamago && arm

package imx6ul

import (
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
// EVK, ENET2 on the USB armory Mk II LAN): in normal operation tamago's soc/nxp/enet under imx-enet with
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

	port port
}

// port is one of the SoC's ENETs as a board wires it.
type port struct {
	hw      *enet.ENET
	regs    uint64
	name    string // ENET1, ENET2
	pads    []pad  // RMII and MDIO pins
	phy     func(eth *enet.ENET)
	fuseMAC bool // the OCOTP MAC fuses hold this port's address
}

// NewEthernet chooses the station address (see mac) and prepares the
// crash-time driver with its rings and buffers carved from dma. It
// touches no ENET register but the address ones, which it reads.
func NewEthernet(dma bus.DMA) (*Ethernet, error) {
	e := &Ethernet{Name: "ffec0", port: ethernetPort()}
	if e.port.hw == nil {
		return nil, fmt.Errorf("imx6ul board: this SoC (%s) has no %s", imx6ul.Model(), e.port.name)
	}
	e.MAC = e.mac()
	e.Desc = fmt.Sprintf("i.MX %s at %#x on %s", e.port.name, e.port.regs, Model)
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
	if e.NIC, err = imxenet.Standby(bus.Direct{}, e.port.regs, rings, pool, e.MAC); err != nil {
		return nil, err
	}
	return e, nil
}

// mac is the station address: what PALR/PAUR hold (QEMU's -net nic
// macaddr=, or a boot loader's), else, where the board fuses it, the MAC
// fuses (OCOTP_MAC1 bits 15:0 and OCOTP_MAC0, as U-Boot reads them for
// ENET1), else a locally administered address made from the SoC's unique
// ID.
func (e *Ethernet) mac() [6]byte {
	var d bus.Direct
	// The controllers' clock gate must be open to read their registers.
	d.Write32(imx6ul.CCM_CCGR0, d.Read32(imx6ul.CCM_CCGR0)|0b11<<imx6ul.CCGRx_CG6)
	l, u := d.Read32(e.port.regs+0xe4), d.Read32(e.port.regs+0xe8)
	m := [6]byte{byte(l >> 24), byte(l >> 16), byte(l >> 8), byte(l), byte(u >> 24), byte(u >> 16)}
	if m[0]&1 == 0 && m != [6]byte{} {
		return m
	}
	if e.port.fuseMAC {
		mac0, _ := imx6ul.OCOTP.Read(4, 2)
		mac1, _ := imx6ul.OCOTP.Read(4, 3)
		m = [6]byte{byte(mac1 >> 8), byte(mac1), byte(mac0 >> 24), byte(mac0 >> 16), byte(mac0 >> 8), byte(mac0)}
		if m[0]&1 == 0 && m != [6]byte{} {
			return m
		}
	}
	uid := imx6ul.UniqueID()
	return [6]byte{0x02, uid[1] ^ uid[5], uid[2] ^ uid[6], uid[3] ^ uid[7], uid[0], uid[4]}
}

// Start brings the controller up under imx-enet with addr (gateway gw, if
// valid): the pads and the PHY as the board needs them, gVisor's stack,
// ICMP echo, and a UDP echo service on port 7. Frames are received by a
// polling goroutine (imx-enet masks the controller's interrupts).
func (e *Ethernet) Start(addr netip.Prefix, gw netip.Addr) error {
	if !addr.Addr().Is4() {
		return fmt.Errorf("imx6ul board: %v is not an IPv4 prefix", addr)
	}
	hw := e.port.hw
	hw.RMII = true
	hw.EnablePHY = e.port.enablePHY
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
	if err := e.Iface.Init(hw, addr.Addr().String(), mask, net.HardwareAddr(e.MAC[:]).String(), gateway); err != nil {
		return fmt.Errorf("imx-enet: %w", err)
	}
	if err := e.Iface.EnableICMP(); err != nil {
		return fmt.Errorf("imx-enet: %w", err)
	}
	go hw.Start(true)
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

// pad is one pin's IOMUX setting for the Ethernet: its mux, pad control
// and (when it has one) daisy-chain input register, the function, and
// 100 or 50 MHz drive as tamago's boards set them.
type pad struct {
	mux, pad, daisy uint32
	mode            uint32
	fast            bool   // 100 MHz pad, else 50 MHz
	sel             uint32 // daisy-chain input
	sion            bool
}

// enablePHY is soc/nxp/enet's EnablePHY hook: pads, then the PHY.
func (p *port) enablePHY(eth *enet.ENET) error {
	for _, pd := range p.pads {
		speed := uint32(iomuxc.SW_PAD_CTL_SPEED_50MHZ)
		if pd.fast {
			speed = iomuxc.SW_PAD_CTL_SPEED_100MHZ
		}
		io := &iomuxc.Pad{Mux: pd.mux, Pad: pd.pad, Daisy: pd.daisy}
		io.Mode(pd.mode)
		io.Ctl(iomuxc.SW_PAD_CTL_DSE_2_R0_6<<iomuxc.SW_PAD_CTL_DSE | speed<<iomuxc.SW_PAD_CTL_SPEED |
			1<<iomuxc.SW_PAD_CTL_PUE | 1<<iomuxc.SW_PAD_CTL_PKE |
			iomuxc.SW_PAD_CTL_PUS_PULL_UP_100K<<iomuxc.SW_PAD_CTL_PUS | 1<<iomuxc.SW_PAD_CTL_HYS)
		io.Select(pd.sel)
		if pd.sion {
			io.SoftwareInput(true)
		}
	}
	p.phy(eth)
	return nil
}

// IEEE 802.3 basic control register (PHY register 0).
const (
	phyCtrl                                           = 0x00
	ctrlReset, ctrlSpeed100, ctrlANeg, ctrlFullDuplex = 1 << 15, 1 << 13, 1 << 12, 1 << 8
)
