package crashinfo

import (
	"debug/elf"
	"slices"
	"testing"
)

// The debugger lines fit the core: no dlv for a 32-bit ARM core, which
// Delve does not read, and gdb-multiarch for it, not the host's gdb.
func TestCommands(t *testing.T) {
	for _, c := range []struct {
		m    elf.Machine
		want []string
	}{
		{elf.EM_X86_64, []string{"dlv core x c", "gdb x c"}},
		{elf.EM_ARM, []string{"gdb-multiarch x c"}},
		{elf.EM_AARCH64, []string{"dlv core x c", "gdb-multiarch x c"}},
		{elf.EM_NONE, []string{"dlv core x c", "gdb x c"}},
	} {
		if got := Commands(c.m, "x", "c"); !slices.Equal(got, c.want) {
			t.Errorf("%v: %q, want %q", c.m, got, c.want)
		}
	}
}
