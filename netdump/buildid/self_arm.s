#include "textflag.h"

// func textStart() uintptr
TEXT ·textStart(SB), NOSPLIT, $0-4
	MOVW $runtime·text(SB), R0
	MOVW R0, ret+0(FP)
	RET
