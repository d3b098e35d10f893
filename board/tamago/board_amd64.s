// tamadump TamaGo board: assembly support (memory layout, port I/O,
// exception entry, crash stack switch).

//go:build tamago && amd64

#include "go_asm.h"
#include "textflag.h"

// Memory layout, overridable at build time with
//   -asmflags=github.com/tamadump/tamadump/board/tamago=-D=RAM_SIZE=0x5c00000
// (see doc.go). The runtime reads RamStart/RamSize in cpuinit, before any Go
// code runs, so they must be link-time data.
#ifndef RAM_START
#define RAM_START 0x00400000
#endif
#ifndef RAM_SIZE
#define RAM_SIZE 0x03400000
#endif
#ifndef DMA_SIZE
#define DMA_SIZE 0x00200000
#endif

DATA	runtime∕goos·RamStart(SB)/8, $RAM_START
GLOBL	runtime∕goos·RamStart(SB), NOPTR, $8
DATA	runtime∕goos·RamSize(SB)/8, $RAM_SIZE
GLOBL	runtime∕goos·RamSize(SB), NOPTR, $8

// func layout() (ramStart, ramSize, dmaSize uint64)
TEXT ·layout(SB),NOSPLIT,$0-24
	MOVQ	$RAM_START, AX
	MOVQ	AX, ramStart+0(FP)
	MOVQ	$RAM_SIZE, AX
	MOVQ	AX, ramSize+8(FP)
	MOVQ	$DMA_SIZE, AX
	MOVQ	AX, dmaSize+16(FP)
	RET

// func inb(port uint16) uint8
TEXT ·inb(SB),NOSPLIT,$0-9
	MOVW	port+0(FP), DX
	BYTE	$0xec	// in al, dx
	MOVB	AL, ret+8(FP)
	RET

// func outb(port uint16, val uint8)
TEXT ·outb(SB),NOSPLIT,$0-3
	MOVW	port+0(FP), DX
	MOVB	val+2(FP), AL
	BYTE	$0xee	// out dx, al
	RET

// func outl(port uint16, val uint32)
TEXT ·outl(SB),NOSPLIT,$0-8
	MOVW	port+0(FP), DX
	MOVL	val+4(FP), AX
	BYTE	$0xef	// out dx, eax
	RET

// func rdtsc() uint64
TEXT ·rdtsc(SB),NOSPLIT,$0-8
	RDTSC
	SHLQ	$32, DX
	ORQ	DX, AX
	MOVQ	AX, ret+0(FP)
	RET

// func rdmsr(msr uint32) uint64
TEXT ·rdmsr(SB),NOSPLIT,$0-16
	MOVL	msr+0(FP), CX
	RDMSR
	SHLQ	$32, DX
	ORQ	DX, AX
	MOVQ	AX, ret+8(FP)
	RET

// func haltLoop()
TEXT ·haltLoop(SB),NOSPLIT|NOFRAME,$0
	CLI
hlt:
	HLT
	JMP	hlt

// func idtBase() uintptr
TEXT ·idtBase(SB),NOSPLIT,$16-8
	LEAQ	0(SP), AX
	SIDT	(AX)
	MOVQ	2(AX), AX
	MOVQ	AX, ret+0(FP)
	RET

// func excStub(vector int) uintptr
TEXT ·excStub(SB),NOSPLIT,$0-16
	MOVQ	vector+0(FP), CX
	MOVQ	$excStubs<>(SB), AX
	MOVQ	(AX)(CX*8), AX
	MOVQ	AX, ret+8(FP)
	RET

// func callerRegs() (pc, sp, bp, flags uint64)
// returns the state of its caller right after the call returns.
TEXT ·callerRegs(SB),NOSPLIT|NOFRAME,$0-32
	MOVQ	0(SP), AX
	MOVQ	AX, pc+0(FP)
	LEAQ	8(SP), AX
	MOVQ	AX, sp+8(FP)
	MOVQ	BP, bp+16(FP)
	PUSHFQ
	POPQ	AX
	MOVQ	AX, flags+24(FP)
	RET

// func segRegs() (cs, ss, ds, es, fs, gs uint64)
TEXT ·segRegs(SB),NOSPLIT,$0-48
	XORQ	AX, AX
	MOVW	CS, AX
	MOVQ	AX, cs+0(FP)
	MOVW	SS, AX
	MOVQ	AX, ss+8(FP)
	MOVW	DS, AX
	MOVQ	AX, ds+16(FP)
	MOVW	ES, AX
	MOVQ	AX, es+24(FP)
	MOVW	FS, AX
	MOVQ	AX, fs+32(FP)
	MOVW	GS, AX
	MOVQ	AX, gs+40(FP)
	RET

// Exception entry. Each stub pushes a zero error code when the CPU does not
// push one, then its vector, so that excCommon sees, on the interrupted stack
// (same privilege: no stack switch, no IST):
//   0(SP) vector, 8(SP) error code, 16(SP) RIP, CS, RFLAGS, RSP, SS.
// All general purpose registers are saved before anything is clobbered.
TEXT excCommon<>(SB),NOSPLIT|NOFRAME,$0
	MOVQ	R15, ·excSave+(8*0)(SB)
	MOVQ	R14, ·excSave+(8*1)(SB)
	MOVQ	R13, ·excSave+(8*2)(SB)
	MOVQ	R12, ·excSave+(8*3)(SB)
	MOVQ	BP, ·excSave+(8*4)(SB)
	MOVQ	BX, ·excSave+(8*5)(SB)
	MOVQ	R11, ·excSave+(8*6)(SB)
	MOVQ	R10, ·excSave+(8*7)(SB)
	MOVQ	R9, ·excSave+(8*8)(SB)
	MOVQ	R8, ·excSave+(8*9)(SB)
	MOVQ	AX, ·excSave+(8*10)(SB)
	MOVQ	CX, ·excSave+(8*11)(SB)
	MOVQ	DX, ·excSave+(8*12)(SB)
	MOVQ	SI, ·excSave+(8*13)(SB)
	MOVQ	DI, ·excSave+(8*14)(SB)
	MOVQ	$-1, ·excSave+(8*15)(SB)	// orig_rax: no system call
	MOVQ	16(SP), AX
	MOVQ	AX, ·excSave+(8*16)(SB)	// rip
	MOVQ	24(SP), AX
	MOVQ	AX, ·excSave+(8*17)(SB)	// cs
	MOVQ	32(SP), AX
	MOVQ	AX, ·excSave+(8*18)(SB)	// rflags
	MOVQ	40(SP), AX
	MOVQ	AX, ·excSave+(8*19)(SB)	// rsp
	MOVQ	48(SP), AX
	MOVQ	AX, ·excSave+(8*20)(SB)	// ss
	MOVL	$0xc0000100, CX
	RDMSR
	SHLQ	$32, DX
	ORQ	DX, AX
	MOVQ	AX, ·excSave+(8*21)(SB)	// fs_base
	MOVL	$0xc0000101, CX
	RDMSR
	SHLQ	$32, DX
	ORQ	DX, AX
	MOVQ	AX, ·excSave+(8*22)(SB)	// gs_base
	XORQ	AX, AX
	MOVW	DS, AX
	MOVQ	AX, ·excSave+(8*23)(SB)
	MOVW	ES, AX
	MOVQ	AX, ·excSave+(8*24)(SB)
	MOVW	FS, AX
	MOVQ	AX, ·excSave+(8*25)(SB)
	MOVW	GS, AX
	MOVQ	AX, ·excSave+(8*26)(SB)
	MOVQ	0(SP), AX
	MOVQ	AX, ·excSave+(8*27)(SB)	// vector
	MOVQ	8(SP), AX
	MOVQ	AX, ·excSave+(8*28)(SB)	// error code
	MOVQ	CR2, AX
	MOVQ	AX, ·excSave+(8*29)(SB)
	MOVQ	$const_ReasonException, ·pendingReason(SB)
	JMP	·enterCrash(SB)

// func enterCrash()
//
// Never returns. Runs crashMain on g0 with g0's stack bounds moved to the
// preallocated crashStack: the crash handler gets a large, known-good stack
// whatever stack (goroutine, g0, or a broken one) the failure happened on.
// TOPFRAME stops runtime tracebacks here.
TEXT ·enterCrash(SB),NOSPLIT|NOFRAME|TOPFRAME,$0
	CLI
	INCQ	·crashDepth(SB)
	MOVQ	·crashDepth(SB), AX
	CMPQ	AX, $const_maxCrashDepth
	JHI	hard
	MOVQ	·g0ptr(SB), R14
	TESTQ	R14, R14
	JZ	hard
	MOVQ	R14, (TLS)
	MOVQ	$·crashStack(SB), AX
	MOVQ	AX, const_gStackLo(R14)
	LEAQ	const_crashStackSize(AX), BX
	MOVQ	BX, const_gStackHi(R14)
	ADDQ	$const_crashStackGuard, AX
	MOVQ	AX, const_gStackGuard0(R14)
	MOVQ	AX, const_gStackGuard1(R14)
	ANDQ	$~15, BX
	MOVQ	BX, SP
	XORQ	BP, BP
	XORPS	X15, X15
	CALL	·crashMain(SB)
hard:
	// no usable Go context: exit QEMU (isa-debug-exit) or halt
	MOVL	$const_debugExitPort, DX
	MOVL	$const_ExitHard, AX
	BYTE	$0xef	// out dx, eax
	CLI
hlt:
	HLT
	JMP	hlt

TEXT exc0<>(SB),NOSPLIT|NOFRAME,$0
	PUSHQ	$0
	PUSHQ	$0
	JMP	excCommon<>(SB)

TEXT exc1<>(SB),NOSPLIT|NOFRAME,$0
	PUSHQ	$0
	PUSHQ	$1
	JMP	excCommon<>(SB)

TEXT exc3<>(SB),NOSPLIT|NOFRAME,$0
	PUSHQ	$0
	PUSHQ	$3
	JMP	excCommon<>(SB)

TEXT exc4<>(SB),NOSPLIT|NOFRAME,$0
	PUSHQ	$0
	PUSHQ	$4
	JMP	excCommon<>(SB)

TEXT exc5<>(SB),NOSPLIT|NOFRAME,$0
	PUSHQ	$0
	PUSHQ	$5
	JMP	excCommon<>(SB)

TEXT exc6<>(SB),NOSPLIT|NOFRAME,$0
	PUSHQ	$0
	PUSHQ	$6
	JMP	excCommon<>(SB)

TEXT exc7<>(SB),NOSPLIT|NOFRAME,$0
	PUSHQ	$0
	PUSHQ	$7
	JMP	excCommon<>(SB)

TEXT exc8<>(SB),NOSPLIT|NOFRAME,$0
	PUSHQ	$8
	JMP	excCommon<>(SB)

TEXT exc9<>(SB),NOSPLIT|NOFRAME,$0
	PUSHQ	$0
	PUSHQ	$9
	JMP	excCommon<>(SB)

TEXT exc10<>(SB),NOSPLIT|NOFRAME,$0
	PUSHQ	$10
	JMP	excCommon<>(SB)

TEXT exc11<>(SB),NOSPLIT|NOFRAME,$0
	PUSHQ	$11
	JMP	excCommon<>(SB)

TEXT exc12<>(SB),NOSPLIT|NOFRAME,$0
	PUSHQ	$12
	JMP	excCommon<>(SB)

TEXT exc13<>(SB),NOSPLIT|NOFRAME,$0
	PUSHQ	$13
	JMP	excCommon<>(SB)

TEXT exc14<>(SB),NOSPLIT|NOFRAME,$0
	PUSHQ	$14
	JMP	excCommon<>(SB)

TEXT exc15<>(SB),NOSPLIT|NOFRAME,$0
	PUSHQ	$0
	PUSHQ	$15
	JMP	excCommon<>(SB)

TEXT exc16<>(SB),NOSPLIT|NOFRAME,$0
	PUSHQ	$0
	PUSHQ	$16
	JMP	excCommon<>(SB)

TEXT exc17<>(SB),NOSPLIT|NOFRAME,$0
	PUSHQ	$17
	JMP	excCommon<>(SB)

TEXT exc18<>(SB),NOSPLIT|NOFRAME,$0
	PUSHQ	$0
	PUSHQ	$18
	JMP	excCommon<>(SB)

TEXT exc19<>(SB),NOSPLIT|NOFRAME,$0
	PUSHQ	$0
	PUSHQ	$19
	JMP	excCommon<>(SB)

TEXT exc20<>(SB),NOSPLIT|NOFRAME,$0
	PUSHQ	$0
	PUSHQ	$20
	JMP	excCommon<>(SB)

TEXT exc21<>(SB),NOSPLIT|NOFRAME,$0
	PUSHQ	$21
	JMP	excCommon<>(SB)

TEXT exc22<>(SB),NOSPLIT|NOFRAME,$0
	PUSHQ	$0
	PUSHQ	$22
	JMP	excCommon<>(SB)

TEXT exc23<>(SB),NOSPLIT|NOFRAME,$0
	PUSHQ	$0
	PUSHQ	$23
	JMP	excCommon<>(SB)

TEXT exc24<>(SB),NOSPLIT|NOFRAME,$0
	PUSHQ	$0
	PUSHQ	$24
	JMP	excCommon<>(SB)

TEXT exc25<>(SB),NOSPLIT|NOFRAME,$0
	PUSHQ	$0
	PUSHQ	$25
	JMP	excCommon<>(SB)

TEXT exc26<>(SB),NOSPLIT|NOFRAME,$0
	PUSHQ	$0
	PUSHQ	$26
	JMP	excCommon<>(SB)

TEXT exc27<>(SB),NOSPLIT|NOFRAME,$0
	PUSHQ	$0
	PUSHQ	$27
	JMP	excCommon<>(SB)

TEXT exc28<>(SB),NOSPLIT|NOFRAME,$0
	PUSHQ	$0
	PUSHQ	$28
	JMP	excCommon<>(SB)

TEXT exc29<>(SB),NOSPLIT|NOFRAME,$0
	PUSHQ	$29
	JMP	excCommon<>(SB)

TEXT exc30<>(SB),NOSPLIT|NOFRAME,$0
	PUSHQ	$30
	JMP	excCommon<>(SB)

TEXT exc31<>(SB),NOSPLIT|NOFRAME,$0
	PUSHQ	$0
	PUSHQ	$31
	JMP	excCommon<>(SB)

DATA	excStubs<>+0(SB)/8, $exc0<>(SB)
DATA	excStubs<>+8(SB)/8, $exc1<>(SB)
DATA	excStubs<>+24(SB)/8, $exc3<>(SB)
DATA	excStubs<>+32(SB)/8, $exc4<>(SB)
DATA	excStubs<>+40(SB)/8, $exc5<>(SB)
DATA	excStubs<>+48(SB)/8, $exc6<>(SB)
DATA	excStubs<>+56(SB)/8, $exc7<>(SB)
DATA	excStubs<>+64(SB)/8, $exc8<>(SB)
DATA	excStubs<>+72(SB)/8, $exc9<>(SB)
DATA	excStubs<>+80(SB)/8, $exc10<>(SB)
DATA	excStubs<>+88(SB)/8, $exc11<>(SB)
DATA	excStubs<>+96(SB)/8, $exc12<>(SB)
DATA	excStubs<>+104(SB)/8, $exc13<>(SB)
DATA	excStubs<>+112(SB)/8, $exc14<>(SB)
DATA	excStubs<>+120(SB)/8, $exc15<>(SB)
DATA	excStubs<>+128(SB)/8, $exc16<>(SB)
DATA	excStubs<>+136(SB)/8, $exc17<>(SB)
DATA	excStubs<>+144(SB)/8, $exc18<>(SB)
DATA	excStubs<>+152(SB)/8, $exc19<>(SB)
DATA	excStubs<>+160(SB)/8, $exc20<>(SB)
DATA	excStubs<>+168(SB)/8, $exc21<>(SB)
DATA	excStubs<>+176(SB)/8, $exc22<>(SB)
DATA	excStubs<>+184(SB)/8, $exc23<>(SB)
DATA	excStubs<>+192(SB)/8, $exc24<>(SB)
DATA	excStubs<>+200(SB)/8, $exc25<>(SB)
DATA	excStubs<>+208(SB)/8, $exc26<>(SB)
DATA	excStubs<>+216(SB)/8, $exc27<>(SB)
DATA	excStubs<>+224(SB)/8, $exc28<>(SB)
DATA	excStubs<>+232(SB)/8, $exc29<>(SB)
DATA	excStubs<>+240(SB)/8, $exc30<>(SB)
DATA	excStubs<>+248(SB)/8, $exc31<>(SB)

GLOBL	excStubs<>(SB), RODATA, $(8*32)
