// Memory layout of the i.MX6UL board, overridable at build time with
//   -asmflags=github.com/tamadump/tamadump/board/imx6ul=-D=RAM_SIZE=0x8000000
// (see doc.go). The runtime reads RamSize in cpuinit, before any Go code
// runs, so it must be link-time data. RamStart is tamago's (the MMDC
// window, 0x80000000).

//go:build tamago && arm

#include "textflag.h"

#ifndef RAM_SIZE
#define RAM_SIZE 0x03a00000
#endif
#ifndef DMA_SIZE
#define DMA_SIZE 0x00200000
#endif

DATA	runtime∕goos·RamSize(SB)/4, $RAM_SIZE
GLOBL	runtime∕goos·RamSize(SB), NOPTR, $4

// func layout() (ramSize, dmaSize uint32)
TEXT ·layout(SB),NOSPLIT,$0-8
	MOVW	$RAM_SIZE, R0
	MOVW	R0, ramSize+0(FP)
	MOVW	$DMA_SIZE, R0
	MOVW	R0, dmaSize+4(FP)
	RET
