/* Boot: start info, console, clocks, CPU tables, loading the Go ELF, and
 * the initial user stack. */
#include "shim.h"
#include <stdarg.h>

u64 tsc_hz, boot_tsc;
u64 ram_base[8], ram_len[8], nram;
u64 dma_base, dma_len = 2 * MiB;
char cmdline[256];
static u64 tsc_mult; /* ns = (ticks * tsc_mult) >> 32 */
static u64 rtc_boot_ns;
static int verbose;

/* TCG runs string instructions an element at a time: use quadwords. */
void *memset(void *d, int c, size_t n) {
	void *r = d;
	if (!(((u64)d | n) & 7)) {
		u64 q = n / 8, v = 0x0101010101010101ull * (u8)c;
		__asm__ volatile("rep stosq" : "+D"(d), "+c"(q) : "a"(v) : "memory");
		return r;
	}
	__asm__ volatile("rep stosb" : "+D"(d), "+c"(n) : "a"(c) : "memory");
	return r;
}
void *memcpy(void *d, const void *s, size_t n) {
	void *r = d;
	size_t q = n / 8, b = n & 7;
	__asm__ volatile("rep movsq; mov %3, %%rcx; rep movsb" : "+D"(d), "+S"(s), "+c"(q) : "r"(b) : "memory");
	return r;
}
void *memmove(void *d, const void *s, size_t n) {
	u8 *dp = d;
	const u8 *sp = s;
	if (dp <= sp || dp >= sp + n)
		return memcpy(d, s, n);
	while (n--)
		dp[n] = sp[n];
	return d;
}
int memcmp(const void *a, const void *b, size_t n) {
	const u8 *p = a, *q = b;
	for (; n; n--, p++, q++)
		if (*p != *q)
			return *p - *q;
	return 0;
}
size_t strlen(const char *s) {
	size_t n = 0;
	while (s[n])
		n++;
	return n;
}

/* ---- console: COM1, and a 64 KiB ring of everything written ---- */
#define COM1 0x3f8
#define MSGBUF 65536
static u8 msgbuf[MSGBUF];
static u64 msgtotal;

static void serial_init(void) {
	outb(COM1 + 1, 0);    /* no interrupts: the shim polls */
	outb(COM1 + 3, 0x80); /* 115200 8N1 */
	outb(COM1 + 0, 1);
	outb(COM1 + 1, 0);
	outb(COM1 + 3, 3);
	outb(COM1 + 2, 0x07); /* FIFO on, cleared */
}
int serial_ready(void) { return inb(COM1 + 5) & 1; }
u8 serial_getc(void) { return inb(COM1); }

void console_write(const char *p, u64 n) {
	for (u64 i = 0; i < n; i++) {
		msgbuf[msgtotal++ % MSGBUF] = p[i];
		while (!(inb(COM1 + 5) & 0x20))
			;
		outb(COM1, p[i]);
	}
}

u64 msgbuf_copy(u8 *dst, u64 n) {
	u64 have = msgtotal < MSGBUF ? msgtotal : MSGBUF;
	if (n > have)
		n = have;
	for (u64 i = 0; i < n; i++)
		dst[i] = msgbuf[(msgtotal - n + i) % MSGBUF];
	return n;
}

static void putnum(u64 v, int base, int width) {
	char b[24];
	int i = 0;
	do {
		b[i++] = "0123456789abcdef"[v % base];
		v /= base;
	} while (v);
	while (i < width)
		b[i++] = '0';
	while (i)
		console_write(&b[--i], 1);
}

/* %d %u %x %s %c, and %lx etc. (every integer is taken as 64-bit) */
void kprintf(const char *fmt, ...) {
	va_list ap;
	va_start(ap, fmt);
	for (; *fmt; fmt++) {
		if (*fmt != '%') {
			console_write(fmt, 1);
			continue;
		}
		fmt++;
		int width = 0;
		while (*fmt >= '0' && *fmt <= '9')
			width = width * 10 + *fmt++ - '0';
		while (*fmt == 'l')
			fmt++;
		switch (*fmt) {
		case 'd': {
			i64 v = va_arg(ap, i64);
			if (v < 0) {
				console_write("-", 1);
				v = -v;
			}
			putnum(v, 10, width);
			break;
		}
		case 'u': putnum(va_arg(ap, u64), 10, width); break;
		case 'x': putnum(va_arg(ap, u64), 16, width); break;
		case 's': {
			const char *s = va_arg(ap, const char *);
			console_write(s, strlen(s));
			break;
		}
		case 'c': {
			char c = va_arg(ap, int);
			console_write(&c, 1);
			break;
		}
		default: console_write(fmt, 1);
		}
	}
	va_end(ap);
}

void halt_exit(u64 code) {
	outl(0xf4, code); /* isa-debug-exit: QEMU exits with (code<<1)|1 */
	for (;;)
		__asm__ volatile("cli; hlt");
}

void reboot(void) {
	static const struct { u16 limit; u64 base; } __attribute__((packed)) noidt;
	outb(0x64, 0xfe); /* keyboard controller reset, where there is one */
	__asm__ volatile("lidt %0; int3" ::"m"(noidt)); /* else a triple fault */
	for (;;)
		__asm__ volatile("cli; hlt");
}

/* ---- clocks ---- */
u64 now_ns(void) { return (u64)(((unsigned __int128)(rdtsc() - boot_tsc) * tsc_mult) >> 32); }
u64 realtime_ns(void) { return rtc_boot_ns + now_ns(); }

static u8 cmos(u8 reg) {
	outb(0x70, reg);
	return inb(0x71);
}

static void rtc_read(void) {
	while (cmos(0x0a) & 0x80)
		;
	u64 v[6];
	static const u8 regs[6] = {0, 2, 4, 7, 8, 9};
	int bcd = !(cmos(0x0b) & 4);
	for (int i = 0; i < 6; i++) {
		v[i] = cmos(regs[i]);
		if (bcd)
			v[i] = (v[i] & 15) + (v[i] >> 4) * 10;
	}
	/* days since 1970-01-01 of the civil date (proleptic Gregorian) */
	i64 y = 2000 + v[5], m = v[4], d = v[3];
	y -= m <= 2;
	i64 era = y / 400, yoe = y - era * 400;
	i64 doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
	i64 days = era * 146097 + yoe * 365 + yoe / 4 - yoe / 100 + doy - 719468;
	rtc_boot_ns = (u64)(days * 86400 + v[2] * 3600 + v[1] * 60 + v[0]) * 1000000000ull;
}

static u16 pit_read(void) {
	outb(0x43, 0x00);
	u8 lo = inb(0x40);
	return lo | (u16)inb(0x40) << 8;
}

static u32 lapic_ticks_per_ms;

/* Measure the TSC and the LAPIC timer against 10 ms of PIT channel 0. */
static void calibrate(void) {
	outb(0x43, 0x34); /* channel 0, lo/hi, rate generator */
	outb(0x40, 0);
	outb(0x40, 0);
	LAPIC[0x3e0 / 4] = 3; /* divide by 16 */
	LAPIC[0x320 / 4] = 1 << 16;
	u16 last = pit_read();
	while (pit_read() == last)
		;
	last = pit_read();
	LAPIC[0x380 / 4] = 0xffffffff;
	u64 t0 = rdtsc(), pit = 0;
	while (pit < 11932) {
		u16 n = pit_read();
		pit += (u16)(last - n);
		last = n;
	}
	u64 t1 = rdtsc();
	u32 l = 0xffffffff - LAPIC[0x390 / 4];
	tsc_hz = (t1 - t0) * 1193182 / pit;
	lapic_ticks_per_ms = (u64)l * 1193182 / pit / 1000;
	tsc_mult = (1000000000ull << 32) / tsc_hz;
}

void lapic_eoi(void) { LAPIC[0xb0 / 4] = 0; }

/* ---- CPU tables ---- */
static u8 idt[256 * 16] __attribute__((aligned(16)));
static u8 df_stack[4096] __attribute__((aligned(16)));

static void set_gate(int v, u64 addr, int dpl, int ist) {
	u8 *g = &idt[v * 16];
	memset(g, 0, 16);
	*(u16 *)g = addr;
	*(u16 *)(g + 2) = KCODE;
	g[4] = ist;
	g[5] = 0x8e | dpl << 5;
	*(u16 *)(g + 6) = addr >> 16;
	*(u32 *)(g + 8) = addr >> 32;
}

static void cpu_init(void) {
	u64 t = (u64)tss;
	*(u64 *)(tss + 36) = (u64)df_stack + sizeof df_stack; /* IST1 */
	*(u16 *)(tss + 102) = 104;                             /* no I/O bitmap: IOPL rules */
	gdt[5] = 103 | (t & 0xffffff) << 16 | 0x89ull << 40 | ((t >> 24) & 0xff) << 56;
	gdt[6] = t >> 32;
	__asm__ volatile("ltr %w0" ::"r"(0x28));
	for (int v = 0; v <= 32; v++)
		set_gate(v, isr_table[v], v == 3 ? 3 : 0, v == 8 ? 1 : 0);
	set_gate(VEC_SPURIOUS, isr_table[33], 0, 0);
	struct { u16 limit; u64 base; } __attribute__((packed)) idtr = {sizeof idt - 1, (u64)idt};
	__asm__ volatile("lidt %0" ::"m"(idtr));

	wrmsr(0xC0000081, (u64)0x10 << 48 | (u64)KCODE << 32);
	wrmsr(0xC0000082, (u64)syscall_entry);
	wrmsr(0xC0000084, 0x200 | 0x400 | 0x100 | 0x40000); /* clear IF, DF, TF, AC */

	/* 8259: move off the exception vectors, then mask everything. */
	static const u8 pic[] = {0x11, 0x30, 4, 1};
	static const u8 pic2[] = {0x11, 0x38, 2, 1};
	for (int i = 0; i < 4; i++) {
		outb(0x20 + (i ? 1 : 0), pic[i]);
		outb(0xa0 + (i ? 1 : 0), pic2[i]);
	}
	outb(0x21, 0xff);
	outb(0xa1, 0xff);

	LAPIC[0x80 / 4] = 0;            /* TPR */
	LAPIC[0xf0 / 4] = 0x100 | 0xff; /* enable, spurious vector */

	u16 fcw = 0x37f;
	u32 mxcsr = 0x1f80;
	__asm__ volatile("fninit; fldcw %0; ldmxcsr %1" ::"m"(fcw), "m"(mxcsr));
}

static void timer_start(void) {
	LAPIC[0x3e0 / 4] = 3;
	LAPIC[0x320 / 4] = VEC_TIMER | 1 << 17; /* periodic */
	LAPIC[0x380 / 4] = lapic_ticks_per_ms;
}

/* ---- command line ----
 * "opt opt ... -- arg1 arg2 KEY=VALUE ...": words before "--" are shim
 * options (dma=SIZE[K|M|G], verbose); after it, words of the form NAME=VALUE
 * (NAME of letters, digits, '_', not starting with a digit) are environment
 * variables and every other word is argv[1..]. */
#define MAXARGS 64
static char words[256];
static char *argv[MAXARGS], *envp[MAXARGS];
static int argc, envc;

static int is_env(const char *w) {
	if (!((*w >= 'A' && *w <= 'Z') || (*w >= 'a' && *w <= 'z') || *w == '_'))
		return 0;
	for (; *w && *w != '='; w++)
		if (!((*w >= 'A' && *w <= 'Z') || (*w >= 'a' && *w <= 'z') || (*w >= '0' && *w <= '9') || *w == '_'))
			return 0;
	return *w == '=';
}

static int streq(const char *a, const char *b) {
	while (*a && *a == *b)
		a++, b++;
	return *a == *b;
}

static u64 parse_size(const char *s) {
	u64 v = 0;
	for (; *s >= '0' && *s <= '9'; s++)
		v = v * 10 + *s - '0';
	if (*s == 'K' || *s == 'k')
		v <<= 10;
	else if (*s == 'M' || *s == 'm')
		v <<= 20;
	else if (*s == 'G' || *s == 'g')
		v <<= 30;
	return v;
}

/* A Go fatal panic normally preempts every running goroutine before it
 * prints and exits; the crash watcher, preempted then, could never run
 * again (the scheduler stays frozen). dontfreezetheworld=1 leaves it be. */
static void add_godebug(void) {
	static char gd[300] = "GODEBUG=dontfreezetheworld=1";
	for (int i = 0; i < envc; i++)
		if (!memcmp(envp[i], "GODEBUG=", 8)) {
			u64 n = strlen(gd);
			gd[n] = ',';
			memcpy(gd + n + 1, envp[i] + 8, strlen(envp[i] + 8) + 1);
			envp[i] = gd;
			return;
		}
	if (envc < MAXARGS - 1)
		envp[envc++] = gd;
}

static void parse_cmdline(void) {
	memcpy(words, cmdline, sizeof words);
	int opts = 1;
	argv[argc++] = "init";
	for (char *p = words; *p;) {
		while (*p == ' ')
			*p++ = 0;
		if (!*p)
			break;
		char *w = p;
		while (*p && *p != ' ')
			p++;
		if (*p)
			*p++ = 0;
		if (opts) {
			if (streq(w, "--"))
				opts = 0;
			else if (w[0] == 'd' && w[1] == 'm' && w[2] == 'a' && w[3] == '=')
				dma_len = (parse_size(w + 4) + 2 * MiB - 1) & ~(2 * MiB - 1);
			else if (streq(w, "verbose"))
				verbose = 1;
			else
				kprintf("shim: unknown option %s\n", w);
		} else if (is_env(w)) {
			if (envc < MAXARGS - 1)
				envp[envc++] = w;
		} else if (argc < MAXARGS - 1)
			argv[argc++] = w;
	}
	add_godebug();
}

/* ---- start info and the Go ELF ---- */
struct start_info {
	u32 magic, version, flags, nr_modules;
	u64 modlist, cmdline, rsdp, memmap;
	u32 memmap_entries, reserved;
};
struct modlist { u64 paddr, size, cmdline, reserved; };
struct e820 { u64 addr, size; u32 type, reserved; };

static void die(const char *msg) {
	kprintf("shim: %s\n", msg);
	halt_exit(124);
}

static u64 go_entry, go_lo, go_hi, go_phdr, go_phnum;

static void load_go(u64 img, u64 size) {
	u8 *e = (u8 *)img;
	if (size < 64 || *(u32 *)e != 0x464c457f || e[4] != 2 || *(u16 *)(e + 18) != 62)
		die("the initrd is not an x86-64 ELF (give the Go program with -initrd)");
	go_entry = *(u64 *)(e + 24);
	u64 phoff = *(u64 *)(e + 32);
	go_phnum = *(u16 *)(e + 56);
	go_lo = ~0ull;
	for (u64 i = 0; i < go_phnum; i++) {
		u8 *ph = e + phoff + i * 56;
		if (*(u32 *)ph != 1)
			continue;
		u64 off = *(u64 *)(ph + 8), va = *(u64 *)(ph + 16), fsz = *(u64 *)(ph + 32), msz = *(u64 *)(ph + 40);
		if (va < LOW_SUPERVISOR || va + msz > USER_LO || off + fsz > size)
			die("Go ELF segment outside 4 MiB-4 GiB (not a static non-PIE binary?)");
		if (va < img + size && va + msz > img)
			die("Go ELF overlaps its own image: give the VM more memory");
		if (off == 0)
			go_phdr = va + phoff;
		if (va < go_lo)
			go_lo = va;
		if (va + msz > go_hi)
			go_hi = va + msz;
	}
	if (go_lo == ~0ull)
		die("Go ELF has no PT_LOAD segment");
	for (u64 i = 0; i < go_phnum; i++) {
		u8 *ph = e + phoff + i * 56;
		if (*(u32 *)ph != 1)
			continue;
		u64 off = *(u64 *)(ph + 8), va = *(u64 *)(ph + 16), fsz = *(u64 *)(ph + 32), msz = *(u64 *)(ph + 40);
		memmove((void *)va, e + off, fsz);
		memset((void *)(va + fsz), 0, msz - fsz);
	}
	go_lo &= ~(PAGE - 1);
	go_hi = (go_hi + PAGE - 1) & ~(PAGE - 1);
}

static void random_bytes(u8 *p, int n) {
	u32 a, b, c, d;
	cpuid(1, &a, &b, &c, &d);
	u64 x = rdtsc() * 0x9e3779b97f4a7c15ull;
	for (int i = 0; i < n; i += 8) {
		u64 r = 0;
		int ok = 0;
		if (c & (1u << 30))
			__asm__ volatile("rdrand %0; setc %b1" : "=r"(r), "=q"(ok));
		if (!ok) {
			x ^= rdtsc();
			x ^= x << 13, x ^= x >> 7, x ^= x << 17;
			r = x;
		}
		for (int j = 0; j < 8 && i + j < n; j++)
			p[i + j] = r >> (8 * j);
	}
}

void fill_random(u8 *p, u64 n) { random_bytes(p, n); }

/* argc, argv, envp and auxv as the Linux ELF loader lays them out. */
#define USTACK_TOP 0x7fff00000000ull
#define USTACK_SIZE (1 * MiB)
static u64 build_stack(void) {
	vma_add(USTACK_TOP - USTACK_SIZE, USTACK_TOP);
	char *sp = (char *)USTACK_TOP;
	u64 uargv[MAXARGS], uenv[MAXARGS];
	for (int i = 0; i < argc; i++) {
		sp -= strlen(argv[i]) + 1;
		memcpy(sp, argv[i], strlen(argv[i]) + 1);
		uargv[i] = (u64)sp;
	}
	for (int i = 0; i < envc; i++) {
		sp -= strlen(envp[i]) + 1;
		memcpy(sp, envp[i], strlen(envp[i]) + 1);
		uenv[i] = (u64)sp;
	}
	sp -= 16;
	random_bytes((u8 *)sp, 16);
	u64 rnd = (u64)sp;
	u32 a, b, c, d;
	cpuid(1, &a, &b, &c, &d);
	u64 aux[] = {3, go_phdr, 4, 56, 5, go_phnum, 6, PAGE, 9, go_entry, 11, 0, 12, 0, 13, 0, 14, 0,
		     16, d, 17, 100, 23, 0, 25, rnd, 0, 0};
	u64 n = 1 + argc + 1 + envc + 1 + sizeof aux / 8;
	u64 *s = (u64 *)(((u64)sp & ~15ull) - (n & 1) * 8) - n;
	u64 *q = s;
	*q++ = argc;
	for (int i = 0; i < argc; i++)
		*q++ = uargv[i];
	*q++ = 0;
	for (int i = 0; i < envc; i++)
		*q++ = uenv[i];
	*q++ = 0;
	memcpy(q, aux, sizeof aux);
	return (u64)s;
}

void kmain(u32 si_addr) {
	boot_tsc = rdtsc();
	serial_init();
	struct start_info *si = (struct start_info *)(u64)si_addr;
	if (si->magic != 0x336ec578)
		die("no PVH start info");
	if (si->cmdline) {
		const char *c = (const char *)si->cmdline;
		for (int i = 0; i < 255 && c[i]; i++)
			cmdline[i] = c[i];
	}
	if (si->version < 1 || !si->memmap)
		die("PVH start info has no memory map");
	struct e820 *mm = (struct e820 *)si->memmap;
	for (u32 i = 0; i < si->memmap_entries && nram < 8; i++) {
		u64 s = (mm[i].addr + PAGE - 1) & ~(PAGE - 1), e = (mm[i].addr + mm[i].size) & ~(PAGE - 1);
		if (mm[i].type != 1 || e <= s)
			continue;
		if (e > USER_LO) /* only the identity-mapped part is used */
			e = USER_LO;
		if (s >= e)
			continue;
		ram_base[nram] = s;
		ram_len[nram++] = e - s;
	}
	for (u64 i = 1; i < nram; i++) /* ascending order for MEMMAP */
		for (u64 j = i; j > 0 && ram_base[j] < ram_base[j - 1]; j--) {
			u64 t = ram_base[j]; ram_base[j] = ram_base[j - 1]; ram_base[j - 1] = t;
			t = ram_len[j]; ram_len[j] = ram_len[j - 1]; ram_len[j - 1] = t;
		}
	parse_cmdline();
	cpu_init();
	calibrate();
	rtc_read();
	if (si->nr_modules < 1)
		die("no Go program: give it with -initrd");
	struct modlist *mod = (struct modlist *)si->modlist;
	load_go(mod->paddr, mod->size);
	mm_init(go_hi);
	if (verbose)
		kprintf("shim: tsc %u Hz, Go %x-%x entry %x, dma %x+%x, boot %u us\n", tsc_hz, go_lo, go_hi,
			go_entry, dma_base, dma_len, now_ns() / 1000);
	u64 sp = build_stack();
	timer_start();
	sched_init(go_entry, sp);
}
