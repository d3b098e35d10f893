/* Freestanding x86-64 shim that runs an unmodified static Linux/amd64 Go
 * program in ring 3 under QEMU microvm. Single CPU, one address space. */
#ifndef SHIM_H
#define SHIM_H

typedef unsigned char u8;
typedef unsigned short u16;
typedef unsigned int u32;
typedef unsigned long long u64;
typedef long long i64;
typedef unsigned long size_t;

#define PAGE 4096ull
#define MiB (1ull << 20)
#define GiB (1ull << 30)
#define KCODE 0x08
#define KDATA 0x10
#define UDATA 0x1b
#define UCODE 0x23
#define PTE_MASK 0x000ffffffffff000ull
#define LOW_SUPERVISOR (4 * MiB) /* nil dereferences fault below this */
#define USER_LO (4 * GiB)        /* user mappings live above the identity map */
#define USER_HI 0x800000000000ull

#define NTHREADS 64
#define KSTACK (16 * 1024)

#define EPERM 1
#define ENOENT 2
#define ESRCH 3
#define EINTR 4
#define EBADF 9
#define EAGAIN 11
#define ENOMEM 12
#define EFAULT 14
#define EBUSY 16
#define ENODEV 19
#define EINVAL 22
#define ENOTTY 25
#define ENOSYS 38
#define ETIMEDOUT 110

/* Trap frame, pushed by boot.S on every kernel entry. */
struct frame {
	u64 r15, r14, r13, r12, rbp, rbx, r11, r10, r9, r8, rax, rcx, rdx, rsi, rdi;
	u64 vec, err; /* for system calls: vec = 256, err = syscall number */
	u64 rip, cs, rflags, rsp, ss;
};
#define VEC_SYSCALL 256
#define VEC_TIMER 0x20
#define VEC_SPURIOUS 0xff

enum { T_FREE, T_RUNNABLE, T_BLOCKED, T_DEAD, T_FROZEN };
enum { W_WOKEN, W_TIMEOUT, W_INTR };

struct thread {
	u64 ksp; /* saved by switch_to */
	int state, tid;
	u8 *kstack;
	struct frame *uf; /* user frame at the top of kstack */
	u64 fs_base;
	u64 sigmask, sigpend;
	u64 ss_sp, ss_size;
	int ss_disabled;
	u64 wait_key, deadline; /* deadline in ns, 0 = none */
	int wake;
	u8 fpu[512] __attribute__((aligned(16)));
};

/* boot.S */
extern u64 kstack_top;
extern u8 tss[104];
extern u64 gdt[];
extern u64 isr_table[];
void syscall_entry(void);
void trap_return(void);
void fork_ret(void);
void switch_to(u64 *old_ksp, u64 new_ksp);
void enter_user(struct frame *f) __attribute__((noreturn));
extern char __shim_start[], __shim_end[];

/* kmain.c */
void *memset(void *d, int c, size_t n);
void *memcpy(void *d, const void *s, size_t n);
void *memmove(void *d, const void *s, size_t n);
size_t strlen(const char *s);
int memcmp(const void *a, const void *b, size_t n);
void console_write(const char *p, u64 n);
void kprintf(const char *fmt, ...);
u64 now_ns(void);
u64 realtime_ns(void);
void halt_exit(u64 code) __attribute__((noreturn));
void reboot(void) __attribute__((noreturn));
int serial_ready(void);
u8 serial_getc(void);
void lapic_eoi(void);
extern u64 tsc_hz, boot_tsc;
extern u64 ram_base[8], ram_len[8], nram;
extern u64 dma_base, dma_len;
extern char cmdline[256];

/* mm.c */
void mm_init(u64 used_end);
u64 alloc_frame(void);
int demand_page(u64 va);
u64 sys_mmap(u64 addr, u64 len, u64 prot, u64 flags, u64 fd);
u64 sys_munmap(u64 addr, u64 len);
u64 sys_madvise(u64 addr, u64 len, u64 advice);
int vma_add(u64 s, u64 e);
u64 memmap_runs(u64 uptr, u64 n);

/* proc.c */
void sched_init(u64 entry, u64 sp);
void trap(struct frame *f);

static inline void outb(u16 p, u8 v) { __asm__ volatile("outb %0, %1" ::"a"(v), "Nd"(p)); }
static inline void outl(u16 p, u32 v) { __asm__ volatile("outl %0, %1" ::"a"(v), "Nd"(p)); }
static inline u8 inb(u16 p) { u8 v; __asm__ volatile("inb %1, %0" : "=a"(v) : "Nd"(p)); return v; }
static inline u64 rdtsc(void) { u32 lo, hi; __asm__ volatile("rdtsc" : "=a"(lo), "=d"(hi)); return lo | (u64)hi << 32; }
static inline void wrmsr(u32 m, u64 v) { __asm__ volatile("wrmsr" ::"c"(m), "a"((u32)v), "d"((u32)(v >> 32))); }
static inline u64 rdmsr(u32 m) { u32 lo, hi; __asm__ volatile("rdmsr" : "=a"(lo), "=d"(hi) : "c"(m)); return lo | (u64)hi << 32; }
static inline void invlpg(u64 va) { __asm__ volatile("invlpg (%0)" ::"r"(va) : "memory"); }
static inline void cpuid(u32 leaf, u32 *a, u32 *b, u32 *c, u32 *d) {
	__asm__ volatile("cpuid" : "=a"(*a), "=b"(*b), "=c"(*c), "=d"(*d) : "a"(leaf), "c"(0));
}
#define MSR_FS_BASE 0xC0000100
#define LAPIC ((volatile u32 *)0xfee00000)

#endif
