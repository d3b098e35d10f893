/* Physical frames, the reverse map, user page tables and mmap. */
#include "shim.h"

extern u64 pml4[512];
/* rmap: frame number -> the user virtual address it is mapped at; or, for
 * a free frame, FREE | the next free frame's address (the free list lives
 * here so that building it does not touch every frame, which is slow under
 * TCG); 0 for frames the shim owns. */
#define FREE (1ull << 63)
static u64 *rmap;
static u64 free_head; /* address of the first free frame + 1, 0 = none */

static void free_frame(u64 pa) {
	rmap[pa / PAGE] = FREE | free_head;
	free_head = pa + 1;
}

u64 alloc_frame(void) {
	if (!free_head)
		return 0;
	u64 pa = free_head - 1;
	free_head = rmap[pa / PAGE] & ~FREE;
	rmap[pa / PAGE] = 0;
	memset((void *)pa, 0, PAGE);
	return pa;
}

/* Frames below used_end (low memory, the shim, the Go image) stay out of
 * the pool; then come the reverse map and, at the top of RAM, the DMA
 * region. */
void mm_init(u64 used_end) {
	u64 top = 0;
	for (u64 i = 0; i < nram; i++)
		if (ram_base[i] + ram_len[i] > top)
			top = ram_base[i] + ram_len[i];
	u64 rmap_frames = top / PAGE;
	rmap = (u64 *)used_end;
	u64 rmap_end = (used_end + rmap_frames * 8 + PAGE - 1) & ~(PAGE - 1);
	for (u64 i = nram; i-- > 0;) {
		u64 e = (ram_base[i] + ram_len[i]) & ~(2 * MiB - 1);
		if (e >= dma_len && e - dma_len >= ram_base[i] && e - dma_len >= rmap_end) {
			dma_base = e - dma_len;
			break;
		}
	}
	if (!dma_base) {
		kprintf("shim: no room for a %u KiB DMA region\n", dma_len >> 10);
		halt_exit(124);
	}
	memset(rmap, 0, rmap_end - used_end);
	for (u64 i = nram; i-- > 0;) /* descending pushes, so frames come out ascending */
		for (u64 pa = ram_base[i] + ram_len[i]; pa > ram_base[i];) {
			pa -= PAGE;
			if (pa >= rmap_end && (pa < dma_base || pa >= dma_base + dma_len))
				free_frame(pa);
		}
}

/* ---- page tables above the identity map ---- */
static u64 *walk(u64 va, int create) {
	u64 *t = pml4;
	for (int lvl = 3; lvl > 0; lvl--) {
		u64 *e = &t[(va >> (12 + 9 * lvl)) & 511];
		if (!(*e & 1)) {
			if (!create)
				return 0;
			u64 f = alloc_frame();
			if (!f)
				return 0;
			*e = f | 7;
		}
		t = (u64 *)(*e & PTE_MASK);
	}
	return &t[(va >> 12) & 511];
}

/* Drop every page in [va, end), skipping absent tables quickly. */
static void unmap_range(u64 va, u64 end) {
	while (va < end) {
		u64 *t = pml4;
		int lvl;
		for (lvl = 3; lvl > 0; lvl--) {
			u64 e = t[(va >> (12 + 9 * lvl)) & 511];
			if (!(e & 1))
				break;
			t = (u64 *)(e & PTE_MASK);
		}
		if (lvl > 0) {
			u64 span = 1ull << (12 + 9 * lvl);
			va = (va & ~(span - 1)) + span;
			continue;
		}
		u64 *pte = &t[(va >> 12) & 511];
		if (*pte & 1) {
			u64 pa = *pte & PTE_MASK;
			*pte = 0;
			invlpg(va);
			rmap[pa / PAGE] = 0;
			free_frame(pa);
		}
		va += PAGE;
	}
}

/* ---- VMAs: sorted, disjoint, merged ranges of reserved user space ---- */
#define NVMA 1024
static struct { u64 s, e; } vma[NVMA];
static int nvma;

static int vma_find(u64 a) {
	for (int i = 0; i < nvma && vma[i].s <= a; i++)
		if (a < vma[i].e)
			return i;
	return -1;
}

static int vma_overlaps(u64 s, u64 e) {
	for (int i = 0; i < nvma; i++)
		if (vma[i].s < e && s < vma[i].e)
			return 1;
	return 0;
}

static void vma_del(u64 s, u64 e) {
	for (int i = 0; i < nvma; i++) {
		if (vma[i].e <= s || vma[i].s >= e)
			continue;
		if (vma[i].s < s && vma[i].e > e) { /* split */
			if (nvma == NVMA)
				return;
			memmove(&vma[i + 1], &vma[i], (nvma - i) * sizeof vma[0]);
			nvma++;
			vma[i].e = s;
			vma[i + 1].s = e;
			return;
		}
		if (vma[i].s < s)
			vma[i].e = s;
		else if (vma[i].e > e)
			vma[i].s = e;
		else {
			memmove(&vma[i], &vma[i + 1], (nvma - i - 1) * sizeof vma[0]);
			nvma--;
			i--;
		}
	}
}

int vma_add(u64 s, u64 e) {
	vma_del(s, e);
	int i = 0;
	while (i < nvma && vma[i].s < s)
		i++;
	if (i > 0 && vma[i - 1].e == s) {
		vma[i - 1].e = e;
		if (i < nvma && vma[i].s == e) {
			vma[i - 1].e = vma[i].e;
			memmove(&vma[i], &vma[i + 1], (nvma - i - 1) * sizeof vma[0]);
			nvma--;
		}
		return 0;
	}
	if (i < nvma && vma[i].s == e) {
		vma[i].s = s;
		return 0;
	}
	if (nvma == NVMA)
		return -ENOMEM;
	memmove(&vma[i + 1], &vma[i], (nvma - i) * sizeof vma[0]);
	nvma++;
	vma[i].s = s;
	vma[i].e = e;
	return 0;
}

/* A touch of a reserved page maps a zeroed frame (the runtime reserves
 * far more address space than there is RAM). Returns 0 if va is not
 * reserved or memory ran out. */
int demand_page(u64 va) {
	if (va < USER_LO || va >= USER_HI || vma_find(va) < 0)
		return 0;
	va &= ~(PAGE - 1);
	u64 *pte = walk(va, 1);
	if (!pte)
		goto oom;
	if (*pte & 1)
		return 1;
	u64 pa = alloc_frame();
	if (!pa)
		goto oom;
	*pte = pa | 7;
	rmap[pa / PAGE] = va;
	return 1;
oom:
	kprintf("shim: out of memory at %lx\n", va);
	return 0;
}

#define MAP_FIXED 0x10
#define MAP_ANONYMOUS 0x20
#define MAP_FIXED_NOREPLACE 0x100000
#define MMAP_BASE 0x200000000000ull

u64 sys_mmap(u64 addr, u64 len, u64 prot, u64 flags, u64 fd) {
	(void)prot; /* protections are not enforced */
	if (!(flags & MAP_ANONYMOUS))
		return -ENODEV;
	len = (len + PAGE - 1) & ~(PAGE - 1);
	if (!len || (addr & (PAGE - 1)))
		return -EINVAL;
	int fits = addr >= USER_LO && addr + len <= USER_HI && addr + len > addr;
	if (flags & (MAP_FIXED | MAP_FIXED_NOREPLACE)) {
		if (!fits)
			return -ENOMEM;
		if ((flags & MAP_FIXED_NOREPLACE) && vma_overlaps(addr, addr + len))
			return -17; /* EEXIST */
		unmap_range(addr, addr + len);
		return vma_add(addr, addr + len) ? (u64)-ENOMEM : addr;
	}
	if (!fits || vma_overlaps(addr, addr + len)) {
		addr = MMAP_BASE;
		for (int i = 0; i < nvma; i++) {
			if (vma[i].e <= addr)
				continue;
			if (vma[i].s >= addr + len)
				break;
			addr = vma[i].e;
		}
		if (addr + len > USER_HI)
			return -ENOMEM;
	}
	return vma_add(addr, addr + len) ? (u64)-ENOMEM : addr;
}

u64 sys_munmap(u64 addr, u64 len) {
	len = (len + PAGE - 1) & ~(PAGE - 1);
	if ((addr & (PAGE - 1)) || addr < USER_LO || addr + len > USER_HI)
		return -EINVAL;
	unmap_range(addr, addr + len);
	vma_del(addr, addr + len);
	return 0;
}

/* DONTNEED (and FREE) really drop the pages: Go does not clear scavenged
 * memory again, it relies on reading zeros. */
u64 sys_madvise(u64 addr, u64 len, u64 advice) {
	len = (len + PAGE - 1) & ~(PAGE - 1);
	if ((advice == 4 || advice == 8) && addr >= USER_LO && addr + len <= USER_HI)
		unmap_range(addr, addr + len);
	return 0;
}

/* MEMMAP: runs of RAM in ascending physical order, each frame with the
 * user address it is mapped at, else its own address. */
struct run { u64 paddr, vaddr, len; };
u64 memmap_runs(u64 uptr, u64 n) {
	struct run *out = (struct run *)uptr, cur = {0, 0, 0};
	u64 total = 0;
	for (u64 i = 0; i < nram; i++)
		for (u64 pa = ram_base[i]; pa < ram_base[i] + ram_len[i]; pa += PAGE) {
			u64 r = rmap[pa / PAGE], va = r && !(r & FREE) ? r : pa;
			if (cur.len && cur.paddr + cur.len == pa && cur.vaddr + cur.len == va) {
				cur.len += PAGE;
				continue;
			}
			if (cur.len && total++ < n)
				out[total - 1] = cur;
			cur.paddr = pa;
			cur.vaddr = va;
			cur.len = PAGE;
		}
	if (cur.len && total++ < n)
		out[total - 1] = cur;
	return total;
}
