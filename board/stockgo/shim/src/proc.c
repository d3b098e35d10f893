/* Threads, scheduling, signals, system calls and the crash watcher. */
#include "shim.h"

static struct thread threads[NTHREADS];
static u8 kstacks[NTHREADS][KSTACK] __attribute__((aligned(16)));
static struct thread *cur;
static int next_tid = 1;
static u64 ticks, slice_start;

struct sigact { u64 handler, flags, restorer, mask; };
static struct sigact sigacts[65];
#define SA_ONSTACK 0x08000000
#define SA_NODEFER 0x40000000
#define SIGBIT(s) (1ull << ((s) - 1))
#define SIGILL 4
#define SIGTRAP 5
#define SIGABRT 6
#define SIGFPE 8
#define SIGKILL 9
#define SIGSEGV 11
#define SIGSTOP 19
#define SIGURG 23

u64 msgbuf_copy(u8 *dst, u64 n);
void fill_random(u8 *p, u64 n);

/* ---- crash state ---- */
struct crash { u64 reason, code, addr, tid, regs[27]; };
static struct thread *watcher;
static int crashed;
static u64 crash_time;
/* After waking the watcher: when, and whether it has said (CRASHBACK)
 * that it got back into the program through the runtime. */
static u64 woke_time;
static int watcher_back;
static struct crash crash_info;
#define KEY_CRASH 1
#define KEY_SERIAL 2
#define KEY_EPOLL 3
#define HALT_DUMP_FAULT 125
#define HALT_NO_WATCHER 124

static void fxsave(u8 *p) { __asm__ volatile("fxsave64 (%0)" ::"r"(p) : "memory"); }
static void fxrstor(u8 *p) { __asm__ volatile("fxrstor64 (%0)" ::"r"(p) : "memory"); }

static void load_thread(struct thread *t) {
	kstack_top = (u64)(t->kstack + KSTACK);
	*(u64 *)(tss + 4) = kstack_top;
	wrmsr(MSR_FS_BASE, t->fs_base);
}

/* ---- scheduler (one CPU, the kernel is not preemptible) ---- */
static void wake_expired(void) {
	u64 now = now_ns();
	int serial = -1;
	for (int i = 0; i < NTHREADS; i++) {
		struct thread *t = &threads[i];
		if (t->state != T_BLOCKED)
			continue;
		if (t->sigpend & ~t->sigmask) {
			t->state = T_RUNNABLE;
			t->wake = W_INTR;
		} else if (t->deadline && now >= t->deadline) {
			t->state = T_RUNNABLE;
			t->wake = W_TIMEOUT;
		} else if (t->wait_key == KEY_SERIAL) {
			if (serial < 0)
				serial = serial_ready();
			if (serial) {
				t->state = T_RUNNABLE;
				t->wake = W_WOKEN;
			}
		}
	}
	if (crashed == 1 && now - crash_time > 1000000000ull) {
		kprintf("shim: crash watcher did not arrive\n");
		halt_exit(HALT_NO_WATCHER);
	}
	if (crashed == 2 && !watcher_back && now - woke_time > 5000000000ull) {
		kprintf("shim: crash watcher woken but stuck in the runtime; halting\n");
		halt_exit(HALT_NO_WATCHER);
	}
}

static struct thread *pick(void) {
	int c = cur - threads;
	for (int k = 1; k <= NTHREADS; k++) {
		struct thread *t = &threads[(c + k) % NTHREADS];
		if (t->state == T_RUNNABLE)
			return t;
	}
	return 0;
}

static void schedule(void) {
	struct thread *next;
	while (!(next = pick())) {
		__asm__ volatile("sti; hlt; cli");
		wake_expired();
	}
	slice_start = ticks;
	if (next == cur)
		return;
	struct thread *prev = cur;
	fxsave(prev->fpu);
	cur = next;
	load_thread(next);
	switch_to(&prev->ksp, next->ksp);
	fxrstor(cur->fpu);
}

/* Block the current thread until woken, a deadline (ns, 0 = none) or a signal. */
static int block(u64 key, u64 deadline) {
	if (cur->sigpend & ~cur->sigmask)
		return W_INTR;
	cur->state = T_BLOCKED;
	cur->wait_key = key;
	cur->deadline = deadline;
	schedule();
	cur->wait_key = 0;
	cur->deadline = 0;
	return cur->wake;
}

static int wake_key(u64 key, int max) {
	int n = 0;
	for (int i = 0; i < NTHREADS && n < max; i++)
		if (threads[i].state == T_BLOCKED && threads[i].wait_key == key) {
			threads[i].state = T_RUNNABLE;
			threads[i].wake = W_WOKEN;
			n++;
		}
	return n;
}

void sched_init(u64 entry, u64 sp) {
	struct thread *t = &threads[0];
	t->state = T_RUNNABLE;
	t->tid = next_tid++;
	t->kstack = kstacks[0];
	t->ss_disabled = 1;
	struct frame *f = (struct frame *)(t->kstack + KSTACK) - 1;
	memset(f, 0, sizeof *f);
	f->rip = entry;
	f->rsp = sp;
	f->cs = UCODE;
	f->ss = UDATA;
	f->rflags = 0x3202; /* IF, IOPL 3 */
	t->uf = f;
	cur = t;
	load_thread(t);
	enter_user(f);
}

/* ---- crash handling ---- */
static void fill_regs(u64 *r, struct frame *f) {
	u64 v[27] = {f->r15, f->r14, f->r13, f->r12, f->rbp, f->rbx, f->r11, f->r10, f->r9,
		     f->r8, f->rax, f->rcx, f->rdx, f->rsi, f->rdi,
		     f->vec == VEC_SYSCALL ? f->err : ~0ull, f->rip, f->cs, f->rflags, f->rsp, f->ss,
		     cur->fs_base, 0, 0, 0, 0, 0};
	memcpy(r, v, sizeof v);
}

static void freeze_others(void) {
	for (int i = 0; i < NTHREADS; i++)
		if (&threads[i] != watcher && (threads[i].state == T_RUNNABLE || threads[i].state == T_BLOCKED))
			threads[i].state = T_FROZEN;
}

/* reason 1 exit_group(code), 2 fault (code = vector), 3 fatal signal. */
static void do_crash(u64 reason, u64 code, u64 addr, struct frame *f) {
	if (cur == watcher && crashed) {
		if (reason == 1) {
			kprintf("shim: exit_group(%d) in the dump path; halting\n", code);
			halt_exit(code);
		}
		kprintf("shim: %s in the dump path (%s %u at rip %lx); halting\n", reason == 2 ? "fault" : "fatal signal",
			reason == 2 ? "vector" : "signal", code, f->rip);
		halt_exit(HALT_DUMP_FAULT);
	}
	if (crashed) { /* a later crash on another thread: the first one counts */
		cur->state = T_FROZEN;
		schedule();
	}
	if (!watcher || watcher == cur || watcher->state == T_DEAD) {
		if (reason == 1)
			halt_exit(code);
		u64 sig = reason == 3 ? code : SIGSEGV;
		kprintf("shim: fatal %s %u in thread %d at rip %lx (addr %lx); exiting with %u\n",
			reason == 2 ? "fault, vector" : "signal", code, cur->tid, f->rip, addr, 128 + sig);
		halt_exit(128 + sig);
	}
	crashed = 1;
	crash_time = now_ns();
	crash_info.reason = reason;
	crash_info.code = code;
	crash_info.addr = addr;
	crash_info.tid = cur->tid;
	fill_regs(crash_info.regs, f);
	cur->state = T_FROZEN;
	if (watcher->state == T_BLOCKED && watcher->wait_key == KEY_CRASH) {
		watcher->state = T_RUNNABLE;
		watcher->wake = W_WOKEN;
	}
	/* Until the watcher arrives the others keep running: it may be between
	 * two CRASHWAIT calls and need them to get back. */
	schedule();
}

/* ---- signals ---- */
struct siginfo { int signo, errno_, code, pad; u64 addr; u8 rest[104]; };
struct sigframe {
	u64 restorer;
	/* ucontext */
	u64 uc_flags, uc_link, ss_sp;
	u32 ss_flags, pad;
	u64 ss_size;
	u64 gregs[23]; /* r8 r9 r10 r11 r12 r13 r14 r15 rdi rsi rbp rbx rdx rax rcx rsp rip eflags csgsfs err trapno oldmask cr2 */
	u64 fpstate, reserved[8];
	u64 sigmask;
	struct siginfo info;
};

static int on_altstack(u64 sp) { return !cur->ss_disabled && sp - cur->ss_sp <= cur->ss_size; }

static void setup_frame(struct frame *f, int sig, struct siginfo *info, u64 err, u64 trapno, u64 cr2) {
	struct sigact *a = &sigacts[sig];
	u64 sp = f->rsp;
	if ((a->flags & SA_ONSTACK) && !cur->ss_disabled && !on_altstack(sp))
		sp = cur->ss_sp + cur->ss_size;
	else
		sp -= 128; /* red zone */
	sp = (sp - 512) & ~63ull;
	u64 fp = sp;
	fxsave((u8 *)fp);
	sp -= sizeof(struct sigframe);
	sp = (sp & ~15ull) - 8; /* as after a call: (rsp+8) % 16 == 0 */
	struct sigframe *s = (struct sigframe *)sp;
	memset(s, 0, sizeof *s);
	s->restorer = a->restorer;
	s->ss_sp = cur->ss_sp;
	s->ss_size = cur->ss_size;
	s->ss_flags = cur->ss_disabled ? 2 : on_altstack(f->rsp);
	u64 g[23] = {f->r8, f->r9, f->r10, f->r11, f->r12, f->r13, f->r14, f->r15, f->rdi, f->rsi,
		     f->rbp, f->rbx, f->rdx, f->rax, f->rcx, f->rsp, f->rip, f->rflags,
		     UCODE | (u64)UDATA << 48, err, trapno, cur->sigmask, cr2};
	memcpy(s->gregs, g, sizeof g);
	s->fpstate = fp;
	s->sigmask = cur->sigmask;
	s->info = *info;
	cur->sigmask |= a->mask | (a->flags & SA_NODEFER ? 0 : SIGBIT(sig));
	cur->sigmask &= ~(SIGBIT(SIGKILL) | SIGBIT(SIGSTOP));
	f->rsp = sp;
	f->rip = a->handler;
	f->rdi = sig;
	f->rsi = (u64)&s->info;
	f->rdx = (u64)&s->uc_flags;
	f->rax = 0;
	f->rflags &= ~0x400ull; /* DF */
}

static void sys_rt_sigreturn(struct frame *f) {
	struct sigframe *s = (struct sigframe *)(f->rsp - 8);
	u64 *g = s->gregs;
	f->r8 = g[0], f->r9 = g[1], f->r10 = g[2], f->r11 = g[3], f->r12 = g[4], f->r13 = g[5];
	f->r14 = g[6], f->r15 = g[7], f->rdi = g[8], f->rsi = g[9], f->rbp = g[10], f->rbx = g[11];
	f->rdx = g[12], f->rax = g[13], f->rcx = g[14], f->rsp = g[15], f->rip = g[16];
	f->rflags = (g[17] & 0xcd5) | 0x3202; /* user flags; IF and IOPL stay on */
	cur->sigmask = s->sigmask & ~(SIGBIT(SIGKILL) | SIGBIT(SIGSTOP));
	if (s->fpstate) {
		u8 *fp = (u8 *)s->fpstate;
		*(u32 *)(fp + 24) &= 0xffff; /* MXCSR reserved bits would #GP */
		fxrstor(fp);
	}
}

static int default_ignored(int sig) { return sig == 17 || sig == 18 || sig == SIGURG || sig == 28; }

/* Deliver one pending signal on the way back to ring 3. */
static void deliver_signals(struct frame *f) {
	for (;;) {
		u64 p = cur->sigpend & ~cur->sigmask;
		if (!p)
			return;
		int sig = __builtin_ctzll(p) + 1;
		cur->sigpend &= ~SIGBIT(sig);
		u64 h = sigacts[sig].handler;
		if (h == 1 || (h == 0 && default_ignored(sig)))
			continue;
		if (h == 0) {
			do_crash(3, sig, 0, f);
			return;
		}
		struct siginfo info = {.signo = sig, .code = -6 /* SI_TKILL */, .addr = 1};
		setup_frame(f, sig, &info, 0, 0, 0);
		return;
	}
}

void trap_exit(struct frame *f) {
	if ((f->cs & 3) == 3)
		deliver_signals(f);
}

/* ---- exceptions and interrupts ---- */
static void exception(struct frame *f) {
	u64 cr2 = 0;
	if (f->vec == 14)
		__asm__ volatile("mov %%cr2, %0" : "=r"(cr2));
	if ((f->cs & 3) == 0) {
		if (f->vec == 14 && !(f->err & 1) && demand_page(cr2))
			return;
		if (f->vec == 15) /* spurious 8259 interrupt */
			return;
		kprintf("shim: kernel fault, vector %u err %x at rip %lx, cr2 %lx, thread %d; halting\n", f->vec,
			f->err, f->rip, cr2, cur->tid);
		halt_exit(HALT_DUMP_FAULT);
	}
	if (f->vec == 14 && !(f->err & 1) && demand_page(cr2))
		return;
	if (f->vec == 15 || f->vec == 2)
		return;
	int sig = SIGSEGV, code = 0x80; /* SI_KERNEL */
	u64 addr = 0;
	switch (f->vec) {
	case 0: sig = SIGFPE, code = 1, addr = f->rip; break;       /* FPE_INTDIV */
	case 16: case 19: sig = SIGFPE, code = 0, addr = f->rip; break;
	case 1: case 3: sig = SIGTRAP, code = 0x80; break;
	case 6: sig = SIGILL, code = 2, addr = f->rip; break;        /* ILL_ILLOPN */
	case 14:
		addr = cr2;
		code = (f->err & 1) && cr2 >= LOW_SUPERVISOR ? 2 : 1; /* SEGV_ACCERR / SEGV_MAPERR */
		break;
	}
	if (crashed && cur == watcher)
		do_crash(2, f->vec, cr2, f);
	struct sigact *a = &sigacts[sig];
	if (a->handler <= 1 || (cur->sigmask & SIGBIT(sig))) {
		do_crash(2, f->vec, cr2, f);
		return;
	}
	struct siginfo info = {.signo = sig, .code = code, .addr = addr};
	setup_frame(f, sig, &info, f->err, f->vec, cr2);
}

static void timer(struct frame *f) {
	ticks++;
	lapic_eoi();
	wake_expired();
	if ((f->cs & 3) == 3 && ticks - slice_start >= 10)
		schedule();
}

/* ---- system calls ---- */
struct timespec { i64 sec, nsec; };
static u64 ts_ns(u64 p) {
	struct timespec *t = (struct timespec *)p;
	if (t->sec < 0)
		return 0;
	return (u64)t->sec * 1000000000ull + t->nsec;
}
static void put_ts(u64 p, u64 ns) {
	struct timespec *t = (struct timespec *)p;
	t->sec = ns / 1000000000ull;
	t->nsec = ns % 1000000000ull;
}

/* File descriptors: 0-2 the console; 3.. epoll instances and eventfds
 * (the runtime's netpoller needs one of each, for its timed sleeps). */
#define NFD 32
enum { FD_NONE, FD_EPOLL, FD_EVENTFD };
static struct { int kind; u64 count; } fds[NFD];
static struct { int epfd, fd; u32 events; u64 data; } epregs[16];

static int fd_alloc(int kind) {
	for (int i = 3; i < NFD; i++)
		if (fds[i].kind == FD_NONE) {
			fds[i].kind = kind;
			fds[i].count = 0;
			return i;
		}
	return -24; /* EMFILE */
}
static int fd_is(u64 fd, int kind) { return fd < NFD && fds[fd].kind == kind; }

static u64 sys_read(u64 fd, u64 buf, u64 n) {
	if (fd_is(fd, FD_EVENTFD)) {
		if (n < 8)
			return -EINVAL;
		if (!fds[fd].count)
			return -EAGAIN;
		*(u64 *)buf = fds[fd].count;
		fds[fd].count = 0;
		return 8;
	}
	if (fd != 0)
		return -EBADF;
	if (!n)
		return 0;
	while (!serial_ready())
		if (block(KEY_SERIAL, now_ns() + 5000000) == W_INTR)
			return -EINTR;
	u64 i = 0;
	while (i < n && serial_ready())
		((u8 *)buf)[i++] = serial_getc();
	return i;
}

static u64 sys_write(u64 fd, u64 buf, u64 n) {
	if (fd == 1 || fd == 2) {
		console_write((const char *)buf, n);
		return n;
	}
	if (fd_is(fd, FD_EVENTFD)) {
		if (n < 8)
			return -EINVAL;
		fds[fd].count += *(u64 *)buf;
		wake_key(KEY_EPOLL, NTHREADS);
		return 8;
	}
	return -EBADF;
}

static int ep_ready(u64 epfd, u64 evs, int max) {
	int n = 0;
	for (int i = 0; i < 16 && n < max; i++)
		if (epregs[i].epfd == (int)epfd && fd_is(epregs[i].fd, FD_EVENTFD) && fds[epregs[i].fd].count &&
		    (epregs[i].events & 1)) {
			u8 *e = (u8 *)evs + n * 12; /* struct epoll_event is packed on amd64 */
			*(u32 *)e = 1;
			*(u64 *)(e + 4) = epregs[i].data;
			n++;
		}
	return n;
}

static u64 sys_epoll_ctl(u64 epfd, u64 op, u64 fd, u64 ev) {
	if (!fd_is(epfd, FD_EPOLL))
		return -EBADF;
	for (int i = 0; i < 16; i++)
		if (epregs[i].epfd == (int)epfd && epregs[i].fd == (int)fd) {
			if (op == 2)
				epregs[i].epfd = 0;
			else {
				epregs[i].events = *(u32 *)ev;
				epregs[i].data = *(u64 *)(ev + 4);
			}
			return 0;
		}
	if (op != 1)
		return -ENOENT;
	for (int i = 0; i < 16; i++)
		if (!epregs[i].epfd) {
			epregs[i].epfd = epfd;
			epregs[i].fd = fd;
			epregs[i].events = *(u32 *)ev;
			epregs[i].data = *(u64 *)(ev + 4);
			return 0;
		}
	return -ENOMEM;
}

static u64 sys_epoll_pwait(u64 epfd, u64 evs, u64 max, i64 ms) {
	if (!fd_is(epfd, FD_EPOLL))
		return -EBADF;
	u64 deadline = ms > 0 ? now_ns() + (u64)ms * 1000000 : 0;
	for (;;) {
		int n = ep_ready(epfd, evs, max);
		if (n || ms == 0)
			return n;
		int w = block(KEY_EPOLL, deadline);
		if (w == W_INTR)
			return -EINTR;
		if (w == W_TIMEOUT)
			return ep_ready(epfd, evs, max);
	}
}

static u64 sys_futex(u64 uaddr, u64 op, u64 val, u64 timeout) {
	int cmd = op & 127;
	if (cmd == 1 || cmd == 10) /* WAKE, WAKE_BITSET */
		return wake_key(uaddr, val > NTHREADS ? NTHREADS : val);
	if (cmd != 0 && cmd != 9)
		return -ENOSYS;
	if (*(volatile u32 *)uaddr != (u32)val)
		return -EAGAIN;
	u64 deadline = 0;
	if (timeout) {
		u64 t = ts_ns(timeout);
		if (cmd == 0)
			deadline = now_ns() + t;
		else if (op & 256) /* FUTEX_CLOCK_REALTIME */
			deadline = t > realtime_ns() ? t - (realtime_ns() - now_ns()) : 1;
		else
			deadline = t ? t : 1;
	}
	int w = block(uaddr, deadline);
	return w == W_INTR ? (u64)-EINTR : w == W_TIMEOUT ? (u64)-ETIMEDOUT : 0;
}

static u64 sleep_until(u64 deadline) {
	while (now_ns() < deadline)
		if (block(0, deadline) == W_INTR)
			return -EINTR;
	return 0;
}

static u64 sys_clone(struct frame *f, u64 flags, u64 stack, u64 tls) {
	int i;
	for (i = 0; i < NTHREADS; i++)
		if (threads[i].state == T_FREE || (threads[i].state == T_DEAD && &threads[i] != cur))
			break;
	if (i == NTHREADS)
		return -EAGAIN;
	struct thread *t = &threads[i];
	memset(t, 0, sizeof *t);
	t->tid = next_tid++;
	t->kstack = kstacks[i];
	t->sigmask = cur->sigmask;
	t->ss_disabled = 1;
	t->fs_base = flags & 0x80000 ? tls : cur->fs_base; /* CLONE_SETTLS */
	fxsave(t->fpu);
	struct frame *cf = (struct frame *)(t->kstack + KSTACK) - 1;
	*cf = *f;
	cf->rax = 0;
	if (stack)
		cf->rsp = stack;
	t->uf = cf;
	u64 *sp = (u64 *)cf;
	*--sp = (u64)fork_ret;
	for (int k = 0; k < 6; k++)
		*--sp = 0;
	t->ksp = (u64)sp;
	t->state = T_RUNNABLE;
	return t->tid;
}

static struct thread *find_tid(u64 tid) {
	for (int i = 0; i < NTHREADS; i++)
		if (threads[i].tid == (int)tid && threads[i].state != T_FREE && threads[i].state != T_DEAD)
			return &threads[i];
	return 0;
}

static u64 sys_tgkill(u64 tid, u64 sig) {
	struct thread *t = find_tid(tid);
	if (!t)
		return -ESRCH;
	if (sig > 64)
		return -EINVAL;
	if (!sig)
		return 0;
	t->sigpend |= SIGBIT(sig);
	if (t->state == T_BLOCKED && !(t->sigmask & SIGBIT(sig))) {
		t->state = T_RUNNABLE;
		t->wake = W_INTR;
	}
	return 0;
}

struct info {
	u64 magic, ram_base[8], ram_len[8], nram, dma_base, dma_len, tsc_hz, boot_tsc, shim_base, shim_len;
	char cmdline[256];
};

/* CRASHWAIT(crash, timeout_ns): timeout 0 waits for ever; otherwise
 * -EAGAIN when it passes with no crash, so the caller can return before
 * the runtime takes its P away (it would need the scheduler's lock to get
 * one back, which a frozen thread may hold). */
static u64 sys_crashwait(u64 uptr, u64 timeout) {
	if (watcher && watcher != cur && watcher->state != T_DEAD)
		return -EBUSY;
	watcher = cur;
	u64 deadline = timeout ? now_ns() + timeout : 0;
	while (!crashed) {
		int w = block(KEY_CRASH, deadline);
		if (crashed)
			break;
		if (w == W_INTR)
			return -EINTR;
		if (w == W_TIMEOUT)
			return -EAGAIN;
	}
	if (crashed == 1) {
		freeze_others();
		crashed = 2;
		woke_time = now_ns();
	}
	memcpy((void *)uptr, &crash_info, sizeof crash_info);
	return 0;
}

static int unknown_seen[512];

static u64 syscall(struct frame *f) {
	u64 a0 = f->rdi, a1 = f->rsi, a2 = f->rdx, a3 = f->r10, a4 = f->r8;
	switch (f->rax) {
	case 0: return sys_read(a0, a1, a2);
	case 1: return sys_write(a0, a1, a2);
	case 3: /* close */
		if (a0 < NFD && fds[a0].kind != FD_NONE)
			fds[a0].kind = FD_NONE;
		return 0;
	case 9: return sys_mmap(a0, a1, a2, a3, a4);
	case 10: return 0; /* mprotect: not enforced */
	case 11: return sys_munmap(a0, a1);
	case 28: return sys_madvise(a0, a1, a2);
	case 13: /* rt_sigaction */
		if (a0 < 1 || a0 > 64)
			return -EINVAL;
		if (a2)
			memcpy((void *)a2, &sigacts[a0], sizeof(struct sigact));
		if (a1) {
			if (a0 == SIGKILL || a0 == SIGSTOP)
				return -EINVAL;
			memcpy(&sigacts[a0], (void *)a1, sizeof(struct sigact));
		}
		return 0;
	case 14: { /* rt_sigprocmask */
		u64 old = cur->sigmask;
		if (a1) {
			u64 s = *(u64 *)a1;
			if (a0 == 0)
				cur->sigmask |= s;
			else if (a0 == 1)
				cur->sigmask &= ~s;
			else if (a0 == 2)
				cur->sigmask = s;
			else
				return -EINVAL;
			cur->sigmask &= ~(SIGBIT(SIGKILL) | SIGBIT(SIGSTOP));
		}
		if (a2)
			*(u64 *)a2 = old;
		return 0;
	}
	case 15: sys_rt_sigreturn(f); return f->rax;
	case 131: { /* sigaltstack */
		struct { u64 sp; u32 flags, pad; u64 size; } *ss = (void *)a0, *oss = (void *)a1;
		if (oss) {
			oss->sp = cur->ss_sp;
			oss->size = cur->ss_size;
			oss->flags = cur->ss_disabled ? 2 : on_altstack(f->rsp);
			oss->pad = 0;
		}
		if (ss) {
			if (on_altstack(f->rsp))
				return -EPERM;
			cur->ss_disabled = ss->flags & 2;
			cur->ss_sp = ss->sp;
			cur->ss_size = ss->size;
		}
		return 0;
	}
	case 35: return sleep_until(now_ns() + ts_ns(a0)); /* nanosleep */
	case 230: /* clock_nanosleep */
		return sleep_until(a1 & 1 ? (a0 == 0 ? ts_ns(a2) - (realtime_ns() - now_ns()) : ts_ns(a2))
				       : now_ns() + ts_ns(a2));
	case 24: /* sched_yield */
		schedule();
		return 0;
	case 56: return sys_clone(f, a0, a1, a4);
	case 60: /* exit */
		if (watcher == cur)
			watcher = 0;
		cur->state = T_DEAD;
		schedule();
		return 0;
	case 231: do_crash(1, a0 & 0xff, 0, f); return 0; /* exit_group */
	case 202: return sys_futex(a0, a1, a2, a3);
	case 39: return 1; /* getpid */
	case 186: return cur->tid;
	case 234: return a0 == 1 ? sys_tgkill(a1, a2) : (u64)-ESRCH;
	case 200: return sys_tgkill(a0, a1); /* tkill */
	case 62: return a0 == 1 || a0 == 0 ? sys_tgkill(cur->tid, a1) : (u64)-ESRCH; /* kill */
	case 158: /* arch_prctl */
		if (a0 == 0x1002) {
			cur->fs_base = a1;
			wrmsr(MSR_FS_BASE, a1);
			return 0;
		}
		if (a0 == 0x1003) {
			*(u64 *)a1 = cur->fs_base;
			return 0;
		}
		return -EINVAL;
	case 204: /* sched_getaffinity: one CPU */
		if (a1 < 8)
			return -EINVAL;
		memset((void *)a2, 0, a1);
		*(u8 *)a2 = 1;
		return 8;
	case 228: case 96: { /* clock_gettime, gettimeofday */
		if (f->rax == 96) {
			if (a0) {
				u64 ns = realtime_ns();
				((u64 *)a0)[0] = ns / 1000000000ull;
				((u64 *)a0)[1] = ns % 1000000000ull / 1000;
			}
			return 0;
		}
		put_ts(a1, a0 == 0 || a0 == 5 || a0 == 8 || a0 == 11 ? realtime_ns() : now_ns());
		return 0;
	}
	case 318: fill_random((u8 *)a0, a1); return a1; /* getrandom */
	case 291: return fd_alloc(FD_EPOLL);
	case 213: return fd_alloc(FD_EPOLL); /* epoll_create */
	case 290: case 284: return fd_alloc(FD_EVENTFD);
	case 233: return sys_epoll_ctl(a0, a1, a2, a3);
	case 281: case 232: return sys_epoll_pwait(a0, a1, a2, (int)a3);
	case 72: return 0;                   /* fcntl: blocking, no flags */
	case 2: case 257: return -ENOENT;    /* open, openat: no files */
	case 16: return -ENOTTY;             /* ioctl */
	case 302: /* prlimit64 */
		if (a3)
			((u64 *)a3)[0] = ((u64 *)a3)[1] = 1024;
		return 0;
	case 63: { /* uname */
		static const char *u[] = {"Linux", "tamadump", "6.1.0-shim", "#1", "x86_64", ""};
		memset((void *)a0, 0, 6 * 65);
		for (int i = 0; i < 6; i++)
			memcpy((char *)a0 + i * 65, u[i], strlen(u[i]));
		return 0;
	}
	case 157: return 0; /* prctl */
	case 102: case 104: case 107: case 108: return 0; /* getuid etc. */
	case 0x7000: {
		struct info *in = (struct info *)a0;
		memset(in, 0, sizeof *in);
		in->magic = 0x74616d6173686d31ull;
		memcpy(in->ram_base, ram_base, sizeof ram_base);
		memcpy(in->ram_len, ram_len, sizeof ram_len);
		in->nram = nram;
		in->dma_base = dma_base;
		in->dma_len = dma_len;
		in->tsc_hz = tsc_hz;
		in->boot_tsc = boot_tsc;
		in->shim_base = (u64)__shim_start;
		in->shim_len = (u64)__shim_end - (u64)__shim_start;
		memcpy(in->cmdline, cmdline, sizeof in->cmdline);
		return 0;
	}
	case 0x7001: return memmap_runs(a0, a1);
	case 0x7002: return msgbuf_copy((u8 *)a0, a1);
	case 0x7003: return sys_crashwait(a0, a1);
	case 0x7006: /* CRASHBACK: the woken watcher runs program code again */
		if (cur == watcher && crashed == 2)
			watcher_back = 1;
		return 0;
	case 0x7004: halt_exit(a0);
	case 0x7005: reboot();
	}
	if (f->rax < 512 && !unknown_seen[f->rax]++)
		kprintf("shim: unimplemented syscall %u\n", f->rax);
	return -ENOSYS;
}

void trap(struct frame *f) {
	if (f->vec == VEC_SYSCALL)
		f->rax = syscall(f);
	else if (f->vec == VEC_TIMER)
		timer(f);
	else if (f->vec == VEC_SPURIOUS)
		;
	else if (f->vec < 32)
		exception(f);
	else
		lapic_eoi();
	trap_exit(f);
}
