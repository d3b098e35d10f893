/* PVH entry, switch to long mode, trap/syscall entry and context switch. */
#define KCODE 0x08
#define KDATA 0x10
#define UDATA 0x1b
#define UCODE 0x23

/* QEMU finds the 32-bit entry through this note (XEN_ELFNOTE_PHYS32_ENTRY). */
	.section .note.Xen, "a", @note
	.balign 4
	.long 4, 4, 18
	.asciz "Xen"
	.long pvh_entry

	.section .text.boot, "ax"
	.code32
	.globl pvh_entry
pvh_entry:
	cli
	cld
	mov %ebx, %esi			/* hvm_start_info */
	/* The loader need not clear .bss; the page tables live there. */
	mov $__bss_start, %edi
	mov $__bss_end, %ecx
	sub %edi, %ecx
	xor %eax, %eax
	rep stosb
	mov $boot_stack_top, %esp

	/* Identity map 0-4 GiB with 2 MiB pages; the first 4 MiB supervisor only. */
	mov $pdpt, %eax
	or $7, %eax
	mov %eax, pml4
	mov $pd, %eax
	or $7, %eax
	xor %ecx, %ecx
1:	mov %eax, pdpt(,%ecx,8)
	add $4096, %eax
	inc %ecx
	cmp $4, %ecx
	jb 1b
	xor %ecx, %ecx
2:	mov %ecx, %eax
	shl $21, %eax
	or $0x87, %eax			/* present, writable, user, 2 MiB */
	cmp $2, %ecx
	jae 3f
	and $~4, %eax
3:	mov %eax, pd(,%ecx,8)
	inc %ecx
	cmp $2048, %ecx
	jb 2b

	mov %cr4, %eax
	or $((1<<5)|(1<<9)|(1<<10)), %eax	/* PAE, OSFXSR, OSXMMEXCPT */
	mov %eax, %cr4
	mov $pml4, %eax
	mov %eax, %cr3
	mov $0xC0000080, %ecx
	rdmsr
	or $((1<<8)|1), %eax		/* LME, SCE */
	wrmsr
	mov %cr0, %eax
	and $~(1<<2), %eax		/* no EM */
	or $(0x80000001|(1<<1)|(1<<5)), %eax	/* PG, PE, MP, NE */
	mov %eax, %cr0
	lgdt gdt_ptr
	ljmp $KCODE, $long_entry

	.code64
long_entry:
	mov $KDATA, %ax
	mov %ax, %ds
	mov %ax, %es
	mov %ax, %ss
	xor %eax, %eax
	mov %ax, %fs
	mov %ax, %gs
	mov $boot_stack_top, %rsp
	mov %esi, %edi
	call kmain
4:	cli
	hlt
	jmp 4b

	.text
/* SYSCALL: build the same frame as an interrupt from ring 3 (IF is off). */
	.globl syscall_entry
syscall_entry:
	mov %rsp, scratch_rsp(%rip)
	mov kstack_top(%rip), %rsp
	push $UDATA
	push scratch_rsp(%rip)
	push %r11
	push $UCODE
	push %rcx
	push %rax
	push $256
	jmp common_entry

common_entry:
	push %rdi
	push %rsi
	push %rdx
	push %rcx
	push %rax
	push %r8
	push %r9
	push %r10
	push %r11
	push %rbx
	push %rbp
	push %r12
	push %r13
	push %r14
	push %r15
	cld			/* Go's memmove can be interrupted with DF=1 */
	mov %rsp, %rdi
	call trap
	.globl trap_return
trap_return:
	pop %r15
	pop %r14
	pop %r13
	pop %r12
	pop %rbp
	pop %rbx
	pop %r11
	pop %r10
	pop %r9
	pop %r8
	pop %rax
	pop %rcx
	pop %rdx
	pop %rsi
	pop %rdi
	add $16, %rsp
	iretq

	.globl enter_user
enter_user:
	mov %rdi, %rsp
	jmp trap_return

/* A new thread's first switch_to returns here with %rsp at its frame. */
	.globl fork_ret
fork_ret:
	mov %rsp, %rdi
	call trap_exit
	jmp trap_return

	.globl switch_to
switch_to:
	push %rbp
	push %rbx
	push %r12
	push %r13
	push %r14
	push %r15
	mov %rsp, (%rdi)
	mov %rsi, %rsp
	pop %r15
	pop %r14
	pop %r13
	pop %r12
	pop %rbx
	pop %rbp
	ret

.macro ISR n
	.balign 16
isr\n:
	.if (\n == 8 || (\n >= 10 && \n <= 14) || \n == 17 || \n == 21 || \n == 29 || \n == 30)
	.else
	push $0
	.endif
	push $\n
	jmp common_entry
.endm
.altmacro
.macro ISRS from, to
	ISR \from
	.if \to-\from
	ISRS %(\from+1), \to
	.endif
.endm
	ISRS 0, 32
	ISR 255
.macro ISRADDR n
	.quad isr\n
.endm
.macro ISRADDRS from, to
	ISRADDR \from
	.if \to-\from
	ISRADDRS %(\from+1), \to
	.endif
.endm
	.section .rodata
	.balign 8
	.globl isr_table
isr_table:
	ISRADDRS 0, 32
	ISRADDR 255

	.data
	.balign 16
	.globl gdt
gdt:
	.quad 0
	.quad 0x00209A0000000000	/* kernel code, 64-bit */
	.quad 0x0000920000000000	/* kernel data */
	.quad 0x0000F20000000000	/* user data */
	.quad 0x0020FA0000000000	/* user code, 64-bit */
	.quad 0, 0			/* TSS, filled in by kmain */
gdt_end:
	.balign 8
gdt_ptr:
	.word gdt_end - gdt - 1
	.quad gdt

	.bss
	.balign 4096
	.globl pml4
pml4:	.space 4096
pdpt:	.space 4096
pd:	.space 4 * 4096
	.balign 16
	.space 16384
boot_stack_top:
	.globl kstack_top
kstack_top:	.quad 0
scratch_rsp:	.quad 0
	.balign 16
	.globl tss
tss:	.space 104
