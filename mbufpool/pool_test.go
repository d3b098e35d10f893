package mbufpool

import (
	"errors"
	"testing"

	"github.com/tamadump/tamadump/drivers/bus"
)

func newPool(t testing.TB, size, bufSize int) *Pool {
	t.Helper()
	p, err := New(bus.DMA{Mem: make([]byte, size), Addr: 0x100010}, bufSize)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func TestGetPutAddresses(t *testing.T) {
	p := newPool(t, 16*2048+64, 2000)
	if p.BufSize() != 2048 {
		t.Fatalf("BufSize = %d, want 2048 (rounded to %d)", p.BufSize(), Align)
	}
	seen := map[uint64]bool{}
	var bufs []Buf
	for {
		b, err := p.Get()
		if errors.Is(err, ErrEmpty) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if b.Addr%Align != 0 || seen[b.Addr] || len(b.Data) != 2048 || cap(b.Data) != 2048 {
			t.Fatalf("bad buffer addr %#x len %d cap %d", b.Addr, len(b.Data), cap(b.Data))
		}
		seen[b.Addr] = true
		b.Data[0] = byte(len(bufs))
		bufs = append(bufs, b)
	}
	if len(bufs) != 16 {
		t.Fatalf("got %d buffers, want 16", len(bufs))
	}
	st := p.Stats()
	if st.InUse != 16 || st.HighWater != 16 || st.Failures != 1 || st.Size != 16 {
		t.Fatalf("stats %+v", st)
	}
	for i, b := range bufs {
		if b.Data[0] != byte(i) {
			t.Fatal("buffers overlap")
		}
		p.Put(b)
	}
	if st := p.Stats(); st.InUse != 0 || st.HighWater != 16 {
		t.Fatalf("stats after put %+v", st)
	}
}

func TestDoublePutPanics(t *testing.T) {
	p := newPool(t, 4096, 1024)
	b, _ := p.Get()
	p.Put(b)
	defer func() {
		if recover() == nil {
			t.Fatal("double Put did not panic")
		}
	}()
	p.Put(b)
}

func TestForeignPutPanics(t *testing.T) {
	p := newPool(t, 4096, 1024)
	q := newPool(t, 8192, 1024)
	b, _ := q.Get()
	b, _ = q.Get()
	_, _ = p.Get()
	defer func() {
		if recover() == nil {
			t.Fatal("Put of a foreign buffer did not panic")
		}
	}()
	p.Put(Buf{Data: b.Data, Addr: b.Addr + 0x1000, idx: b.idx})
}

func TestTooSmall(t *testing.T) {
	if _, err := New(bus.DMA{Mem: make([]byte, 100)}, 2048); err == nil {
		t.Fatal("no error for a region smaller than one buffer")
	}
	if _, err := New(bus.DMA{Mem: make([]byte, 4096)}, 0); err == nil {
		t.Fatal("no error for buffer size 0")
	}
}

func TestNoAllocation(t *testing.T) {
	p := newPool(t, 64*2048, 2048)
	allocs := testing.AllocsPerRun(1000, func() {
		a, _ := p.Get()
		b, _ := p.Get()
		p.Put(a)
		p.Put(b)
	})
	if allocs != 0 {
		t.Fatalf("Get/Put allocate %v times per run", allocs)
	}
}

func BenchmarkGetPut(b *testing.B) {
	p := newPool(b, 64*2048, 2048)
	b.ReportAllocs()
	for b.Loop() {
		x, _ := p.Get()
		p.Put(x)
	}
}

func TestTakeAllOrNothing(t *testing.T) {
	p := newPool(t, 8*2048, 2048)
	var all []Buf
	for b, err := p.Get(); err == nil; b, err = p.Get() {
		all = append(all, b)
	}
	for _, b := range all {
		p.Put(b)
	}
	n := len(all)
	a, b := make([]Buf, 2), make([]Buf, n-1)
	if err := p.Take(a, b); err != ErrEmpty {
		t.Fatalf("taking %d of %d: %v", n+1, n, err)
	}
	if st := p.Stats(); st.InUse != 0 || a[0].Valid() {
		t.Fatalf("%d buffers still out after a failed Take", st.InUse)
	}
	if err := p.Take(a, b[:n-2]); err != nil {
		t.Fatal(err)
	}
	if st := p.Stats(); int(st.InUse) != n || !a[1].Valid() || !b[n-3].Valid() || b[n-2].Valid() {
		t.Fatalf("after Take: %+v", st)
	}
}
