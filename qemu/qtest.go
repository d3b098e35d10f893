package qemu

import (
	"bytes"
	"fmt"
	"strconv"
	"time"
)

// Command sends one raw qtest command line (without the newline) and
// returns QEMU's reply line, e.g. Command("readl 0xe0000008") gives
// "OK 0x0000000080080783". A "FAIL ..." reply is returned as an error.
// Unsolicited "IRQ ..." lines are skipped.
func (vm *VM) Command(cmd string) (string, error) {
	vm.mu.Lock()
	defer vm.mu.Unlock()
	vm.line = append(append(vm.line[:0], cmd...), '\n')
	rep, err := vm.roundTrip()
	if err != nil {
		return "", err
	}
	if bytes.HasPrefix(rep, []byte("FAIL")) {
		return "", fmt.Errorf("qtest %q: %s", cmd, rep)
	}
	return string(rep), nil
}

// roundTrip sends vm.line and returns the reply line (valid until the next
// call). Called with vm.mu held. It does not allocate on success, so the
// harness adds nothing to a driver's allocation count.
func (vm *VM) roundTrip() ([]byte, error) {
	if vm.dead {
		if vm.err != nil {
			return nil, vm.err
		}
		return nil, errDead
	}
	if err := vm.conn.SetDeadline(time.Now().Add(vm.timeout)); err != nil {
		return nil, vm.fail(err)
	}
	if _, err := vm.conn.Write(vm.line); err != nil {
		return nil, vm.fail(err)
	}
	for {
		rep, err := vm.r.ReadSlice('\n')
		if err != nil {
			return nil, vm.fail(err)
		}
		rep = rep[:len(rep)-1]
		if bytes.HasPrefix(rep, []byte("IRQ ")) {
			continue
		}
		return rep, nil
	}
}

// fail marks the VM dead after a lost or garbled exchange (the reply
// stream can no longer be trusted) and reports it on the test. Errorf, not
// Fatalf: drivers may run on other goroutines. Called with vm.mu held.
func (vm *VM) fail(err error) error {
	if vm.dead {
		return err
	}
	vm.dead = true
	// A lost connection usually means QEMU is exiting: give it a moment
	// so its exit status and last words make it into the report.
	select {
	case <-vm.exited:
		err = fmt.Errorf("qtest: %v (QEMU exited: %v)", err, vm.cmd.ProcessState)
	case <-time.After(500 * time.Millisecond):
		err = fmt.Errorf("qtest: %v", err)
	}
	vm.err = err
	if !vm.closed && !vm.starting {
		vm.tb.Errorf("qemu: %v%s", err, vm.stderrText())
	}
	return err
}

// access runs "op 0xADDR[ 0xVAL]" and returns the reply's value for reads.
// On any failure it returns all-ones, like a bus with no device behind it.
func (vm *VM) access(op string, addr uint64, val uint64, write bool) uint64 {
	vm.mu.Lock()
	defer vm.mu.Unlock()
	b := append(vm.line[:0], op...)
	b = append(b, " 0x"...)
	b = strconv.AppendUint(b, addr, 16)
	if write {
		b = append(b, " 0x"...)
		b = strconv.AppendUint(b, val, 16)
	}
	vm.line = append(b, '\n')
	rep, err := vm.roundTrip()
	if err != nil {
		return ^uint64(0)
	}
	if write {
		if string(rep) != "OK" {
			vm.fail(fmt.Errorf("%s 0x%x 0x%x: reply %q", op, addr, val, rep))
			return ^uint64(0)
		}
		return 0
	}
	v, ok := parseOKHex(rep)
	if !ok {
		vm.fail(fmt.Errorf("%s 0x%x: reply %q", op, addr, rep))
		return ^uint64(0)
	}
	return v
}

// parseOKHex parses "OK 0x<hex>" without allocating.
func parseOKHex(rep []byte) (uint64, bool) {
	if len(rep) < 6 || string(rep[:5]) != "OK 0x" {
		return 0, false
	}
	var v uint64
	for _, c := range rep[5:] {
		switch {
		case '0' <= c && c <= '9':
			c -= '0'
		case 'a' <= c && c <= 'f':
			c -= 'a' - 10
		case 'A' <= c && c <= 'F':
			c -= 'A' - 10
		default:
			return 0, false
		}
		v = v<<4 | uint64(c)
	}
	return v, true
}

// Read8 implements bus.MMIO.
func (vm *VM) Read8(addr uint64) uint8 { return uint8(vm.access("readb", addr, 0, false)) }

// Read16 implements bus.MMIO.
func (vm *VM) Read16(addr uint64) uint16 { return uint16(vm.access("readw", addr, 0, false)) }

// Read32 implements bus.MMIO.
func (vm *VM) Read32(addr uint64) uint32 { return uint32(vm.access("readl", addr, 0, false)) }

// Write8 implements bus.MMIO.
func (vm *VM) Write8(addr uint64, v uint8) { vm.access("writeb", addr, uint64(v), true) }

// Write16 implements bus.MMIO.
func (vm *VM) Write16(addr uint64, v uint16) { vm.access("writew", addr, uint64(v), true) }

// Write32 implements bus.MMIO.
func (vm *VM) Write32(addr uint64, v uint32) { vm.access("writel", addr, uint64(v), true) }

// In8 implements bus.Ports.
func (vm *VM) In8(port uint16) uint8 { return uint8(vm.access("inb", uint64(port), 0, false)) }

// In16 implements bus.Ports.
func (vm *VM) In16(port uint16) uint16 { return uint16(vm.access("inw", uint64(port), 0, false)) }

// In32 implements bus.Ports.
func (vm *VM) In32(port uint16) uint32 { return uint32(vm.access("inl", uint64(port), 0, false)) }

// Out8 implements bus.Ports.
func (vm *VM) Out8(port uint16, v uint8) { vm.access("outb", uint64(port), uint64(v), true) }

// Out16 implements bus.Ports.
func (vm *VM) Out16(port uint16, v uint16) { vm.access("outw", uint64(port), uint64(v), true) }

// Out32 implements bus.Ports.
func (vm *VM) Out32(port uint16, v uint32) { vm.access("outl", uint64(port), uint64(v), true) }
