package imxenet

// Register offsets from the ENET base (i.MX6 reference manual, ENET
// chapter; the same word indexes in QEMU's hw/net/imx_fec.h).
const (
	regEIR  = 0x004 // interrupt events, write 1 to clear
	regEIMR = 0x008 // interrupt mask
	regRDAR = 0x010 // receive descriptor active: write to kick
	regTDAR = 0x014 // transmit descriptor active: write to kick
	regECR  = 0x024 // control
	regMMFR = 0x040 // MII management frame
	regMSCR = 0x044 // MII speed
	regRCR  = 0x084 // receive control
	regTCR  = 0x0c4 // transmit control
	regPALR = 0x0e4 // MAC address bytes 0-3, byte 0 in bits 31:24
	regPAUR = 0x0e8 // MAC address bytes 4-5 in bits 31:16
	regIAUR = 0x118 // individual address hash
	regIALR = 0x11c
	regGAUR = 0x120 // group (multicast) address hash
	regGALR = 0x124
	regTFWR = 0x144 // transmit FIFO watermark
	regRDSR = 0x180 // RX ring start
	regTDSR = 0x184 // TX ring start
	regMRBR = 0x188 // RX buffer size
)

const (
	ecrReset   = 1 << 0
	ecrEtherEn = 1 << 1
	// ecrDBSWP makes the controller read and write descriptors
	// little-endian, as the Cortex-A sees memory; without it the i.MX6
	// uses big-endian descriptors. QEMU ignores the bit and always uses
	// host (little-endian) order.
	// ECR.EN1588 (bit 4) stays clear: it selects the enhanced 32-byte
	// descriptors.
	ecrDBSWP = 1 << 8

	eirMII = 1 << 23

	rcrMaxFLShift = 16
	rcrMIIMode    = 1 << 2 // must be set
	rcrRMIIMode   = 1 << 8 // the i.MX6UL EVK's PHYs are RMII
	tcrFDEN       = 1 << 2 // full duplex
	tfwrSTRFWD    = 1 << 8 // store and forward: no TX underruns

	// mscrSpeed gives MDC = IPG clock / ((13+1)*2) = 66 MHz / 28 < 2.5 MHz.
	mscrSpeed = 13 << 1

	// MMFR fields: start 01, opcode 10 (read), turnaround 10.
	mmfrRead    = 1<<30 | 2<<28 | 2<<16
	mmfrPAShift = 23
	mmfrRAShift = 18

	phyBMSR       = 1
	bmsrLinkUp    = 1 << 2
	phyAddrs      = 32
	phyUnknown    = phyAddrs + 1
	mdioPolls     = 10000
	resetPolls    = 10000
	txFullChecks  = 2000
	paurTypeField = 0x8808 // PAUR's low half: the pause frame EtherType
)

// Legacy buffer descriptor: 8 bytes, word 0 = data length (bits 15:0) and
// flags (bits 31:16), word 1 = buffer address; little-endian with
// ECR.DBSWP (QEMU's IMXFECBufDesc in host order).
const (
	descSize = 8

	bdReady = 1 << 15 // TX: owned by the controller
	bdEmpty = 1 << 15 // RX: owned by the controller
	bdWrap  = 1 << 13 // last descriptor of the ring
	bdLast  = 1 << 11 // last buffer of a frame
	bdTC    = 1 << 10 // TX: append the CRC
	bdLG    = 1 << 5  // RX: frame longer than RCR.MAX_FL
	bdNO    = 1 << 4  // RX: non-octet aligned
	bdCR    = 1 << 2  // RX: CRC error
	bdOV    = 1 << 1  // RX: FIFO overrun
	bdTR    = 1 << 0  // RX: truncated
	bdRXErr = bdLG | bdNO | bdCR | bdOV | bdTR
)
