package imx6ul

import (
	"testing"

	"github.com/tamadump/tamadump/board"
	"github.com/tamadump/tamadump/netdump/elfcore"
)

func TestMessage(t *testing.T) {
	for _, c := range []struct {
		code, addr uint64
		fsr        uint32
		want       string
	}{
		{VectorUndefined, 0, 0, "undefined instruction at pc 0x80012340"},
		{VectorDataAbort, 4, 0x007, "data abort at pc 0x80012340: read from 0x4, DFSR 0x7 (translation fault, page)"},
		{VectorDataAbort, 0x80000000, 0x80d, "data abort at pc 0x80012340: write to 0x80000000, DFSR 0x80d (permission fault, section)"},
		{VectorDataAbort, 3, 0x001, "data abort at pc 0x80012340: read from 0x3, DFSR 0x1 (alignment fault)"},
		{VectorDataAbort, 0x20000000, 0x408, "data abort at pc 0x80012340: read from 0x20000000, DFSR 0x408 (other fault)"},
		{VectorDataAbort, 0, 0x406, "data abort at pc 0x80012340: read from 0x0, DFSR 0x406 (asynchronous external abort)"},
		{VectorPrefetchAbort, 0x80012340, 0x00d, "prefetch abort at pc 0x80012340: fetch from 0x80012340, IFSR 0xd (permission fault, section)"},
		{0x18, 0, 0, "exception at vector 0x18"},
	} {
		cr := Crash{Crash: board.Crash{Reason: board.Fault, Code: c.code, Addr: c.addr}, FaultStatus: c.fsr}
		cr.Regs[elfcore.ARMPC] = 0x80012340
		buf := make([]byte, 0, 256)
		if got := string(cr.Message(buf)); got != c.want {
			t.Errorf("got  %q\nwant %q", got, c.want)
		}
		if a := testing.AllocsPerRun(10, func() { cr.Message(buf) }); a != 0 {
			t.Errorf("%q: %v allocations", c.want, a)
		}
	}
	// The count sees allocations: no room in b.
	cr := Crash{Crash: board.Crash{Reason: board.Fault, Code: VectorUndefined}}
	if a := testing.AllocsPerRun(10, func() { cr.Message(nil) }); a == 0 {
		t.Error("negative control: appending to a nil slice counted no allocation")
	}
	panicked := Crash{Crash: board.Crash{Reason: board.Panic, Code: 2}}
	if got := panicked.Message([]byte("x")); string(got) != "x" {
		t.Errorf("a panic's message %q: the runtime printed it", got)
	}
}
