#include "textflag.h"

// func textStart() uintptr
TEXT ·textStart(SB), NOSPLIT, $0-8
	MOVQ $runtime·text(SB), AX
	MOVQ AX, ret+0(FP)
	RET
