package e1000

// Register offsets in BAR0 (Intel 8254x; hw/net/e1000_regs.h in QEMU).
const (
	regCTRL   = 0x0000
	regSTATUS = 0x0008
	regEERD   = 0x0014
	regICR    = 0x00c0
	regIMC    = 0x00d8
	regRCTL   = 0x0100
	regTCTL   = 0x0400
	regTIPG   = 0x0410
	regRDBAL  = 0x2800
	regRDBAH  = 0x2804
	regRDLEN  = 0x2808
	regRDH    = 0x2810
	regRDT    = 0x2818
	regTDBAL  = 0x3800
	regTDBAH  = 0x3804
	regTDLEN  = 0x3808
	regTDH    = 0x3810
	regTDT    = 0x3818
	regMTA    = 0x5200 // 128 dwords
	regRAL0   = 0x5400 // receive address n at 0x5400 + 8n, 16 entries
	regRAH0   = 0x5404
)

// CTRL bits.
const (
	ctrlFD     = 1 << 0
	ctrlASDE   = 1 << 5
	ctrlSLU    = 1 << 6
	ctrlILOS   = 1 << 7
	ctrlFRCSPD = 1 << 11
	ctrlFRCDPX = 1 << 12
	ctrlRST    = 1 << 26
	ctrlVME    = 1 << 30
	ctrlPHYRST = 1 << 31
)

const statusLU = 1 << 1

// EERD bits (82540: address in 15:8, data in 31:16).
const (
	eerdStart = 1 << 0
	eerdDone  = 1 << 4
)

// RCTL bits. BSIZE 00 with BSEX clear is 2048-byte buffers.
const (
	rctlEN    = 1 << 1
	rctlMPE   = 1 << 4 // multicast promiscuous
	rctlBAM   = 1 << 15
	rctlSECRC = 1 << 26

	// rctl is what Reset sets (see there).
	rctl = rctlEN | rctlMPE | rctlBAM | rctlSECRC
)

// TCTL bits and fields.
const (
	tctlEN   = 1 << 1
	tctlPSP  = 1 << 3
	tctlCT   = 0x0f << 4  // collision threshold
	tctlCOLD = 0x40 << 12 // collision distance, full duplex
)

// tipg is the inter-packet gap real 8254x parts want (copper); QEMU ignores it.
const tipg = 0x0060200a

const rahAV = 1 << 31

// Legacy descriptors: 16 bytes; the second quadword holds
// TX: length 15:0, CSO 23:16, CMD 31:24, STATUS 39:32, ...
// RX: length 15:0, checksum 31:16, STATUS 39:32, ERRORS 47:40, special 63:48.
const (
	descSize = 16

	txCmdEOP  = 0x01
	txCmdIFCS = 0x02
	txCmdRS   = 0x08
	txCmdDEXT = 0x20 // extended: context or data descriptor
	txStatDD  = 0x01

	// Extended descriptors: DTYP in bits 23:20 of the second quadword
	// (0 context, 1 data), POPTS in bits 47:40 of a data descriptor's.
	// A context descriptor's first quadword holds IPCSS 7:0, IPCSO
	// 15:8, IPCSE 31:16, TUCSS 39:32, TUCSO 47:40, TUCSE 63:48.
	txDtypData  = 1 << 20
	txPoptsTXSM = 0x02 // insert the TCP/UDP checksum

	rxStatDD  = 0x01
	rxStatEOP = 0x02
)
