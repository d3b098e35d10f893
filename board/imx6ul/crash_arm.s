// Exception entry, the switch to the crash stack, and halting.

//go:build tamago && arm

#include "go_asm.h"
#include "textflag.h"

#define CPSID_IF	WORD $0xf10c00c0 // cpsid if: mask IRQ and FIQ
#define WFI		WORD $0xe320f003
#define MRS_R0_SPSR	WORD $0xe14f0000 // mrs r0, SPSR
#define SYS_MODE	WORD $0xe321f0df // msr CPSR_c, #0xdf: System mode, IRQ and FIQ masked

// Word offsets into the save area (crash.go: r0-r15, cpsr, orig_r0, code,
// address, status).
#define SAVE_PC		(4*15)
#define SAVE_SP		(4*13)
#define SAVE_LR		(4*14)
#define SAVE_CPSR	(4*16)
#define SAVE_ORIG_R0	(4*17)
#define SAVE_CODE	(4*const_saveCode)
#define SAVE_ADDR	(4*const_saveAddr)
#define SAVE_STATUS	(4*const_saveStatus)

// The exception stubs run in Undefined or Abort mode, whose banked SP
// they use as the pointer to the save area (nothing returns to the
// faulting code, so the mode's own stack is not needed). r0-r12 are
// saved first, untouched; then each stub leaves, for excCommon,
//   R0 the faulting instruction's address (LR less the mode's offset),
//   R1 the fault address, R2 the fault status, R3 the vector offset.
TEXT ·excUndefined(SB),NOSPLIT|NOFRAME,$0
	MOVW	$·excSave(SB), R13
	MOVM.IA	[R0-R12], (R13)
	SUB	$4, R14, R0
	MOVW	$0, R1
	MOVW	$0, R2
	MOVW	$const_VectorUndefined, R3
	B	excCommon<>(SB)

TEXT ·excPrefetchAbort(SB),NOSPLIT|NOFRAME,$0
	MOVW	$·excSave(SB), R13
	MOVM.IA	[R0-R12], (R13)
	SUB	$4, R14, R0
	MRC	15, 0, R1, C6, C0, 2	// IFAR
	MRC	15, 0, R2, C5, C0, 1	// IFSR
	MOVW	$const_VectorPrefetchAbort, R3
	B	excCommon<>(SB)

TEXT ·excDataAbort(SB),NOSPLIT|NOFRAME,$0
	MOVW	$·excSave(SB), R13
	MOVM.IA	[R0-R12], (R13)
	SUB	$8, R14, R0
	MRC	15, 0, R1, C6, C0, 0	// DFAR
	MRC	15, 0, R2, C5, C0, 0	// DFSR
	MOVW	$const_VectorDataAbort, R3
	B	excCommon<>(SB)

// excCommon stores what the stub found and the interrupted cpsr (SPSR),
// then in System mode its sp and lr, and enters the crash path.
TEXT excCommon<>(SB),NOSPLIT|NOFRAME,$0
	MOVW	R0, SAVE_PC(R13)
	MOVW	R1, SAVE_ADDR(R13)
	MOVW	R2, SAVE_STATUS(R13)
	MOVW	R3, SAVE_CODE(R13)
	MRS_R0_SPSR
	MOVW	R0, SAVE_CPSR(R13)
	MOVW	$-1, R0
	MOVW	R0, SAVE_ORIG_R0(R13)
	SYS_MODE
	MOVW	$·excSave(SB), R0
	MOVW	R13, SAVE_SP(R0)
	MOVW	R14, SAVE_LR(R0)
	MOVW	$const_reasonException, R1
	MOVW	R1, ·pendingReason(SB)
	B	·enterCrash(SB)

// excSupervisor returns from SVC at once: nothing in the image makes
// system calls, and it lets the semihosting call in haltCode run harmlessly
// when no debugger or emulator takes it.
TEXT ·excSupervisor(SB),NOSPLIT|NOFRAME,$0
	MOVW.S	R14, R15

// func callerRegs() (pc, sp, lr, cpsr uint32)
// returns its caller's state right after the call returns: the return
// address, the caller's sp, and the caller's own return address, which
// Go's ARM frames keep at 0(sp).
TEXT ·callerRegs(SB),NOSPLIT|NOFRAME,$0-16
	MOVW	R14, pc+0(FP)
	MOVW	R13, sp+4(FP)
	MOVW	0(R13), R0
	MOVW	R0, lr+8(FP)
	WORD	$0xe10f0000	// mrs r0, CPSR
	MOVW	R0, cpsr+12(FP)
	RET

// func enterCrash()
//
// Never returns. Runs crashMain on g0 with g0's stack bounds moved to the
// preallocated crashStack: the crash handler gets a large, known-good
// stack whatever stack (goroutine, g0, or a broken one) the failure
// happened on. TOPFRAME stops runtime tracebacks here.
TEXT ·enterCrash(SB),NOSPLIT|NOFRAME|TOPFRAME,$0
	CPSID_IF
	MOVW	·crashDepth(SB), R0
	ADD	$1, R0
	MOVW	R0, ·crashDepth(SB)
	CMP	$const_maxCrashDepth, R0
	B.HI	hard
	MOVW	·g0ptr(SB), g
	CMP	$0, g
	B.EQ	hard
	MOVW	$·crashStack(SB), R0
	MOVW	R0, const_gStackLo(g)
	ADD	$const_crashStackSize, R0, R1
	MOVW	R1, const_gStackHi(g)
	ADD	$const_crashStackGuard, R0, R2
	MOVW	R2, const_gStackGuard0(g)
	MOVW	R2, const_gStackGuard1(g)
	BIC	$7, R1, R13
	MOVW	$0, R14
	BL	·crashMain(SB)
hard:
	// no usable Go context
	MOVW	$const_ExitHard, R0
	B	halt<>(SB)

// func haltCode(code int32)
TEXT ·haltCode(SB),NOSPLIT|NOFRAME,$0-4
	MOVW	code+0(FP), R0
	B	halt<>(SB)

// halt exits QEMU with status R0 through semihosting SYS_EXIT_EXTENDED
// (0x20; R1 points to {ADP_Stopped_ApplicationExit, code}), then, if that
// returns (no semihosting), waits for interrupts forever with them masked.
TEXT halt<>(SB),NOSPLIT|NOFRAME,$0
	CPSID_IF
	MOVW	$·exitBlock(SB), R1
	MOVW	R0, 4(R1)
	MOVW	$0x20026, R0
	MOVW	R0, 0(R1)
	MOVW	$0x20, R0
	SWI	$0x123456
wait:
	WFI
	B	wait
