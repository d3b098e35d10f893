// Package qemu runs QEMU's device models under a test, without a guest
// operating system, so drivers can be tested on the host against the same
// NIC emulation the boards meet.
//
// Start launches qemu-system-x86_64 (qemu-system-arm for MCIMX6ULEVK, see
// arm.go) with a firmware that only halts, so the CPU leaves every device
// untouched, and speaks QEMU's qtest protocol over a Unix socket. The
// returned *VM is a bus.MMIO and a bus.Ports (each access is one qtest
// round trip), and DMA returns guest RAM mapped into the test process (a
// shared memory file; file offset = guest physical address - VM.RAMBase),
// so descriptor rings and buffers are plain memory on both sides. Each netdev
// named in Config.Netdevs is a `-netdev dgram` backend whose other end is a
// Link the test sends and receives raw Ethernet frames on.
//
// Typical use in a test:
//
//	vm := qemu.Start(t, qemu.Config{
//		Machine: qemu.PC, // or qemu.Q35, qemu.MicroVM (pcie=on)
//		Netdevs: []string{"n0"},
//		Args:    []string{"-device", "e1000,netdev=n0,mac=52:54:00:12:34:56,addr=4,romfile="},
//	})
//	// vm.Out32(0xcf8, ...), vm.Read32(bar0+8), vm.DMA(), vm.Link("n0").Send(frame)
//
// Start skips the test when the machine's QEMU is not installed, and Close
// runs through t.Cleanup. A QEMU that stops answering fails the test (with
// its stderr) instead of hanging it: every reply has a deadline, and after a
// failure all accesses return all-ones at once.
//
// Time is real: there is no qtest accelerator in Debian's QEMU, so QEMU runs
// TCG and its timers (the e1000 1 s RCTL pause) run on the wall clock.
package qemu

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/tamadump/tamadump/drivers/bus"
)

// Binary is the QEMU executable Start runs.
const Binary = "qemu-system-x86_64"

// Machine types.
const (
	PC      = "pc"
	Q35     = "q35"
	MicroVM = "microvm" // started with pcie=on: ECAM at 0xe0000000
)

// Config describes the virtual machine.
type Config struct {
	// Machine is PC (the default), Q35, MicroVM or MCIMX6ULEVK (Arm, see
	// arm.go).
	Machine string
	// MachineOpts are appended to -machine. Empty on MicroVM means
	// "pcie=on" (PCI through ECAM at 0xe0000000).
	MachineOpts []string
	// RAMMiB is the guest RAM size; default 32.
	RAMMiB int
	// LegacyVirtioMMIO keeps microvm's virtio-mmio transport at version 1.
	// By default Start adds -global virtio-mmio.force-legacy=false
	// (version 2) on MicroVM.
	LegacyVirtioMMIO bool
	// Netdevs are the ids of dgram netdevs to create; attach devices to
	// them in Args with netdev=ID and reach them through VM.Link(ID).
	Netdevs []string
	// Args are extra QEMU arguments, e.g. "-device", "e1000,...".
	Args []string
	// Timeout bounds every qtest reply and the start-up; default 10 s.
	Timeout time.Duration
}

// DMABase is the guest physical address where VM.DMA begins: above the
// legacy VGA/BIOS windows at 0xA0000-0xFFFFF.
const DMABase = 1 << 20

// VM is a running QEMU under qtest. It implements bus.MMIO and bus.Ports
// and is safe for concurrent use (accesses are serialised).
type VM struct {
	tb      testing.TB
	dir     string
	cmd     *exec.Cmd
	stderr  *tailBuffer
	exited  chan struct{}
	ram     []byte
	ramBase uint64 // guest physical address of ram[0]
	dmaBase uint64 // where DMA begins
	links   map[string]*Link
	timeout time.Duration

	mu       sync.Mutex
	conn     *net.UnixConn
	r        *bufio.Reader
	line     []byte // command being built
	dead     bool
	starting bool // start reports failures itself
	err      error
	closed   bool

	closeOnce sync.Once
}

var (
	_ bus.MMIO  = (*VM)(nil)
	_ bus.Ports = (*VM)(nil)
)

// Available reports whether the QEMU binary is installed.
func Available() bool { return installed(Binary) }

func installed(bin string) bool {
	_, err := exec.LookPath(bin)
	return err == nil
}

// Start runs QEMU for the test and registers its shutdown with tb.Cleanup.
// It skips the test if QEMU is not installed and fails it if QEMU does not
// start.
func Start(tb testing.TB, cfg Config) *VM {
	tb.Helper()
	if bin, pkg := binaryFor(cfg.Machine); !installed(bin) {
		tb.Skipf("%s is not installed (apt-get install %s); skipping the QEMU device test", bin, pkg)
	}
	vm, err := start(tb, cfg)
	if err != nil {
		tb.Fatalf("qemu: %v", err)
	}
	tb.Cleanup(func() { vm.Close() })
	return vm
}

func start(tb testing.TB, cfg Config) (vm *VM, err error) {
	if cfg.Machine == "" {
		cfg.Machine = PC
	}
	if cfg.RAMMiB == 0 {
		cfg.RAMMiB = 32
	}
	if cfg.Timeout == 0 {
		cfg.Timeout = 10 * time.Second
	}
	if cfg.Machine == MicroVM && len(cfg.MachineOpts) == 0 {
		cfg.MachineOpts = []string{"pcie=on"}
	}
	// Unix socket paths must stay short (108 bytes): prefer /dev/shm, which
	// also keeps the guest RAM file off the disk.
	parent := ""
	if st, err := os.Stat("/dev/shm"); err == nil && st.IsDir() {
		parent = "/dev/shm"
	}
	dir, err := os.MkdirTemp(parent, "tamadump-qemu-")
	if err != nil {
		return nil, err
	}
	vm = &VM{
		tb: tb, dir: dir, timeout: cfg.Timeout,
		stderr:  &tailBuffer{max: 64 << 10},
		exited:  make(chan struct{}),
		links:   map[string]*Link{},
		line:    make([]byte, 0, 64),
		dmaBase: DMABase,
	}
	vm.starting = true
	defer func() {
		vm.starting = false
		if err != nil {
			vm.Close() // waits for QEMU, so its output is complete
			err = fmt.Errorf("%w%s", err, vm.stderrText())
		}
	}()

	firmware, err := vm.haltArgs(cfg.Machine)
	if err != nil {
		return vm, err
	}
	sock := filepath.Join(dir, "qtest.sock")
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: sock, Net: "unix"})
	if err != nil {
		return vm, err
	}
	defer ln.Close()

	args := []string{
		"-machine", machineArg(cfg),
		"-object", fmt.Sprintf("memory-backend-file,id=ram0,size=%dM,mem-path=%s,share=on", cfg.RAMMiB, filepath.Join(dir, "ram")),
		"-accel", "tcg",
		firmware[0], firmware[1],
		"-nodefaults", "-no-user-config",
		"-display", "none", "-monitor", "none", "-serial", "none",
		"-qtest", "unix:" + sock, "-qtest-log", "/dev/null",
	}
	if cfg.Machine == MicroVM && !cfg.LegacyVirtioMMIO {
		args = append(args, "-global", "virtio-mmio.force-legacy=false")
	}
	for _, id := range cfg.Netdevs {
		l, err := newLink(dir, id, cfg.Timeout)
		if err != nil {
			return vm, err
		}
		vm.links[id] = l
		args = append(args, "-netdev", fmt.Sprintf(
			"dgram,id=%s,local.type=unix,local.path=%s,remote.type=unix,remote.path=%s",
			id, l.qemuAddr.Name, l.hostPath))
	}
	args = append(args, cfg.Args...)

	bin, _ := binaryFor(cfg.Machine)
	vm.cmd = exec.Command(bin, args...)
	vm.cmd.Stdout = vm.stderr
	vm.cmd.Stderr = vm.stderr
	// If the test binary dies without running cleanups, take QEMU along:
	// it does not exit when the qtest socket closes.
	vm.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := vm.cmd.Start(); err != nil {
		return vm, err
	}
	go func() {
		vm.cmd.Wait()
		close(vm.exited)
		ln.Close() // unblocks Accept if QEMU died before connecting
	}()

	ln.SetDeadline(time.Now().Add(cfg.Timeout))
	conn, err := ln.AcceptUnix()
	if err != nil {
		select {
		case <-vm.exited:
			return vm, fmt.Errorf("QEMU exited before connecting to qtest (%v)", vm.cmd.ProcessState)
		default:
			return vm, fmt.Errorf("waiting for QEMU's qtest connection: %w", err)
		}
	}
	vm.conn = conn
	vm.r = bufio.NewReaderSize(conn, 4096)

	// The first reply also means the machine (RAM file, netdevs) exists.
	if rep, err := vm.Command("endianness"); err != nil {
		return vm, err
	} else if rep != "OK little" {
		return vm, fmt.Errorf("qtest endianness: %q", rep)
	}
	ram, err := mapRAM(filepath.Join(dir, "ram"), cfg.RAMMiB<<20)
	if err != nil {
		return vm, err
	}
	vm.ram = ram
	return vm, nil
}

func machineArg(cfg Config) string {
	s := cfg.Machine
	for _, o := range cfg.MachineOpts {
		s += "," + o
	}
	return s + ",memory-backend=ram0"
}

// haltFirmware is a 64 KiB BIOS image whose reset vector (at 0xFFFF0 of the
// image's last 16 bytes) runs cli; hlt; jmp back to the hlt.
func haltFirmware() []byte {
	fw := bytes.Repeat([]byte{0xFF}, 64<<10)
	copy(fw[0xFFF0:], []byte{0xFA, 0xF4, 0xEB, 0xFD})
	return fw
}

func mapRAM(path string, size int) ([]byte, error) {
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return nil, fmt.Errorf("opening guest RAM: %w", err)
	}
	defer f.Close()
	m, err := syscall.Mmap(int(f.Fd()), 0, size, syscall.PROT_READ|syscall.PROT_WRITE, syscall.MAP_SHARED)
	if err != nil {
		return nil, fmt.Errorf("mapping guest RAM: %w", err)
	}
	return m, nil
}

// RAM is all of guest RAM: RAM[a] is guest physical address RAMBase()+a.
func (vm *VM) RAM() []byte { return vm.ram }

// RAMBase is the guest physical address of RAM[0]: 0 on x86, ARMRAMBase
// on the Arm board.
func (vm *VM) RAMBase() uint64 { return vm.ramBase }

// DMA is guest RAM from DMABase (ARMDMABase on the Arm board) to its end,
// for rings and buffers. Every call returns the same memory: a test with
// several drivers carves it.
func (vm *VM) DMA() bus.DMA {
	off := vm.dmaBase - vm.ramBase
	return bus.DMA{Mem: vm.ram[off:len(vm.ram):len(vm.ram)], Addr: vm.dmaBase}
}

// Link returns the host end of the netdev with the given id.
func (vm *VM) Link(id string) *Link {
	l, ok := vm.links[id]
	if !ok {
		panic("qemu: no netdev " + strconv.Quote(id) + " in Config.Netdevs")
	}
	return l
}

// Err is the first qtest failure, if any.
func (vm *VM) Err() error {
	vm.mu.Lock()
	defer vm.mu.Unlock()
	return vm.err
}

// Stderr is what QEMU printed so far (the last 64 KiB).
func (vm *VM) Stderr() string { return vm.stderr.String() }

func (vm *VM) stderrText() string {
	if s := vm.stderr.String(); s != "" {
		return "\nQEMU output:\n" + s
	}
	return ""
}

// Close stops QEMU, unmaps guest RAM and removes the temporary files. It
// is safe to call more than once.
func (vm *VM) Close() error {
	vm.closeOnce.Do(func() {
		vm.mu.Lock()
		vm.closed, vm.dead = true, true
		if vm.conn != nil {
			vm.conn.Close()
		}
		vm.mu.Unlock()
		if vm.cmd != nil && vm.cmd.Process != nil {
			vm.cmd.Process.Signal(syscall.SIGTERM)
			select {
			case <-vm.exited:
			case <-time.After(3 * time.Second):
				vm.cmd.Process.Kill()
				<-vm.exited
			}
		}
		if vm.ram != nil {
			syscall.Munmap(vm.ram)
			vm.ram = nil
		}
		for _, l := range vm.links {
			l.conn.Close()
		}
		os.RemoveAll(vm.dir)
	})
	return nil
}

// tailBuffer keeps the last max bytes written to it.
type tailBuffer struct {
	mu  sync.Mutex
	max int
	b   []byte
}

func (t *tailBuffer) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.b = append(t.b, p...)
	if over := len(t.b) - t.max; over > 0 {
		t.b = append(t.b[:0], t.b[over:]...)
	}
	return len(p), nil
}

func (t *tailBuffer) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return string(t.b)
}

var errDead = errors.New("qemu: VM failed or closed earlier")
