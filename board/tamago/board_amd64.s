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
	MOVQ	$const_reasonException, ·pendingReason(SB)
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

// Exception stubs: vectors that push no error code get a zero one, so
// that every stub leaves the same frame for excCommon. Vector 2 (NMI)
// stays tamago's.
#define STUB(name, vec) \
	TEXT name(SB),NOSPLIT|NOFRAME,$0; \
	PUSHQ	$0; \
	PUSHQ	$vec; \
	JMP	excCommon<>(SB)
#define STUB_ERR(name, vec) \
	TEXT name(SB),NOSPLIT|NOFRAME,$0; \
	PUSHQ	$vec; \
	JMP	excCommon<>(SB)
#define ENTRY(vec, name) DATA excStubs<>+(8*vec)(SB)/8, $name(SB)

STUB(exc0<>, 0)
STUB(exc1<>, 1)
STUB(exc3<>, 3)
STUB(exc4<>, 4)
STUB(exc5<>, 5)
STUB(exc6<>, 6)
STUB(exc7<>, 7)
STUB_ERR(exc8<>, 8)
STUB(exc9<>, 9)
STUB_ERR(exc10<>, 10)
STUB_ERR(exc11<>, 11)
STUB_ERR(exc12<>, 12)
STUB_ERR(exc13<>, 13)
STUB_ERR(exc14<>, 14)
STUB(exc15<>, 15)
STUB(exc16<>, 16)
STUB_ERR(exc17<>, 17)
STUB(exc18<>, 18)
STUB(exc19<>, 19)
STUB(exc20<>, 20)
STUB_ERR(exc21<>, 21)
STUB(exc22<>, 22)
STUB(exc23<>, 23)
STUB(exc24<>, 24)
STUB(exc25<>, 25)
STUB(exc26<>, 26)
STUB(exc27<>, 27)
STUB(exc28<>, 28)
STUB_ERR(exc29<>, 29)
STUB_ERR(exc30<>, 30)
STUB(exc31<>, 31)

ENTRY(0, exc0<>)
ENTRY(1, exc1<>)
ENTRY(3, exc3<>)
ENTRY(4, exc4<>)
ENTRY(5, exc5<>)
ENTRY(6, exc6<>)
ENTRY(7, exc7<>)
ENTRY(8, exc8<>)
ENTRY(9, exc9<>)
ENTRY(10, exc10<>)
ENTRY(11, exc11<>)
ENTRY(12, exc12<>)
ENTRY(13, exc13<>)
ENTRY(14, exc14<>)
ENTRY(15, exc15<>)
ENTRY(16, exc16<>)
ENTRY(17, exc17<>)
ENTRY(18, exc18<>)
ENTRY(19, exc19<>)
ENTRY(20, exc20<>)
ENTRY(21, exc21<>)
ENTRY(22, exc22<>)
ENTRY(23, exc23<>)
ENTRY(24, exc24<>)
ENTRY(25, exc25<>)
ENTRY(26, exc26<>)
ENTRY(27, exc27<>)
ENTRY(28, exc28<>)
ENTRY(29, exc29<>)
ENTRY(30, exc30<>)
ENTRY(31, exc31<>)

GLOBL	excStubs<>(SB), RODATA, $(8*32)
