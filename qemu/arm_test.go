package qemu

import (
	"encoding/binary"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"
)

// cpuTicks is QEMU's user+system CPU time in clock ticks.
func cpuTicks(t *testing.T, vm *VM) int {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(vm.cmd.Process.Pid) + "/stat")
	if err != nil {
		t.Skipf("no /proc: %v", err)
	}
	// Fields after the parenthesised command name; utime and stime are
	// fields 14 and 15 of the whole line.
	f := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+2:]))
	u, _ := strconv.Atoi(f[11])
	s, _ := strconv.Atoi(f[12])
	return u + s
}

func TestARMBoard(t *testing.T) {
	vm := Start(t, Config{Machine: MCIMX6ULEVK, RAMMiB: 16, Netdevs: []string{"n0"},
		Args: []string{"-net", "nic,netdev=n0,macaddr=52:54:00:12:34:56"}})
	if vm.RAMBase() != ARMRAMBase || len(vm.RAM()) != 16<<20 {
		t.Fatalf("RAM = %#x+%d", vm.RAMBase(), len(vm.RAM()))
	}
	d := vm.DMA()
	if d.Addr != ARMDMABase || len(d.Mem) != 15<<20 {
		t.Fatalf("DMA = %#x+%d", d.Addr, len(d.Mem))
	}
	// The halting program is where QEMU loads raw kernels.
	if w := binary.LittleEndian.Uint32(vm.RAM()[0x10000:]); w != 0xe320f003 {
		t.Fatalf("RAM+0x10000 = %#x, want the wfi", w)
	}
	binary.LittleEndian.PutUint32(d.Mem[0x100:], 0xdeadbeef)
	if v := vm.Read32(d.Addr + 0x100); v != 0xdeadbeef {
		t.Fatalf("readl of host-written RAM = %#x", v)
	}
	vm.Write32(d.Addr+0x200, 0x12345678)
	if v := binary.LittleEndian.Uint32(d.Mem[0x200:]); v != 0x12345678 {
		t.Fatalf("host view of guest write = %#x", v)
	}
	// ENET1 holds the -net nic address in PALR/PAUR (big-endian order).
	if l, u := vm.Read32(0x02188000+0xe4), vm.Read32(0x02188000+0xe8); l != 0x52540012 || u>>16 != 0x3456 {
		t.Fatalf("ENET1 PALR %#x PAUR %#x", l, u)
	}
	// A CPU spinning instead of sleeping in wfi would use a whole core.
	before := cpuTicks(t, vm)
	time.Sleep(time.Second)
	used := cpuTicks(t, vm) - before
	t.Logf("QEMU CPU time in 1 s: %d ticks", used)
	if used > 30 {
		t.Fatalf("QEMU used %d ticks of CPU in 1 s: the guest CPU is not idle", used)
	}
	if err := vm.Err(); err != nil {
		t.Fatal(err)
	}
}

func TestMachineOf(t *testing.T) {
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"-m", "64M", "-machine", "mcimx6ul-evk", "-kernel", "x"}, MCIMX6ULEVK},
		{[]string{"-machine", "microvm,x-option-roms=on,pit=on", "-smp", "1"}, MicroVM},
		{[]string{"-M", "q35"}, Q35},
		{[]string{"-kernel", "x"}, ""},
	} {
		if got := machineOf(c.args); got != c.want {
			t.Errorf("machineOf(%q) = %q, want %q", c.args, got, c.want)
		}
	}
	if bin, _ := binaryFor(machineOf([]string{"-machine", "mcimx6ul-evk"})); bin != ARMBinary {
		t.Errorf("the i.MX6UL runs under %s", bin)
	}
}
