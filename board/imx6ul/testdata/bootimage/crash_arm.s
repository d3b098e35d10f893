//go:build tamago && arm

#include "textflag.h"

// func undefined()
TEXT ·undefined(SB),NOSPLIT,$0
	WORD	$0xe7f000f0	// udf #0
	RET
