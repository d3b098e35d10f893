#include "textflag.h"

// One LDR/STR of the access width through the low word of the physical
// address (identity mapped on the boards), fenced by DSB SY (see Direct).

#define DSB WORD $0xf57ff04f // dsb sy

TEXT ·mmioRead8(SB),NOSPLIT,$0-9
	MOVW	addr_lo+0(FP), R0
	MOVBU	(R0), R1
	DSB
	MOVB	R1, ret+8(FP)
	RET

TEXT ·mmioRead16(SB),NOSPLIT,$0-10
	MOVW	addr_lo+0(FP), R0
	MOVHU	(R0), R1
	DSB
	MOVH	R1, ret+8(FP)
	RET

TEXT ·mmioRead32(SB),NOSPLIT,$0-12
	MOVW	addr_lo+0(FP), R0
	MOVW	(R0), R1
	DSB
	MOVW	R1, ret+8(FP)
	RET

TEXT ·mmioWrite8(SB),NOSPLIT,$0-9
	MOVW	addr_lo+0(FP), R0
	MOVBU	v+8(FP), R1
	DSB
	MOVB	R1, (R0)
	RET

TEXT ·mmioWrite16(SB),NOSPLIT,$0-10
	MOVW	addr_lo+0(FP), R0
	MOVHU	v+8(FP), R1
	DSB
	MOVH	R1, (R0)
	RET

TEXT ·mmioWrite32(SB),NOSPLIT,$0-12
	MOVW	addr_lo+0(FP), R0
	MOVW	v+8(FP), R1
	DSB
	MOVW	R1, (R0)
	RET
