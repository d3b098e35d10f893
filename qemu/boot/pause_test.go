package boot

import (
	"path/filepath"
	"testing"
	"time"

	"github.com/tamadump/tamadump/qemu/gdbprof"
)

// TestPausedDump: a dump goes through while QEMU pauses the guest every
// 2 ms (a debugger's samples through its gdbstub), each pause stopping
// and restarting the vhost-user NIC, past 32,768 frames each way of its
// rings (the guest's 128 MiB are mostly random data: about 60,000
// datagrams).
func TestPausedDump(t *testing.T) {
	img, err := image(t, StockGo).With(map[string]string{"fill": "free"})
	if err != nil {
		t.Fatal(err)
	}
	sock := filepath.Join(t.TempDir(), "gdb.sock")
	dir := t.TempDir()
	args := append(img.QEMUArgs(128), gdbprof.QEMUArgs(sock)...)
	m := startUntil(t, Config{QEMUArgs: args, DumpDir: dir}, `READY`, 60*time.Second)
	stop, profiled := make(chan struct{}), make(chan *gdbprof.Profile, 1)
	go func() {
		p, err := gdbprof.Run(sock, 2*time.Millisecond, 4, stop)
		if err != nil {
			t.Errorf("sampling: %v", err)
		}
		profiled <- p
	}()
	if err := m.Send("panic paused"); err != nil {
		t.Fatal(err)
	}
	if err := m.WaitLog("Completed dump", 3*time.Minute); err != nil {
		t.Fatal(err)
	}
	close(stop)
	if p := <-profiled; p == nil || len(p.Stacks) < 100 {
		t.Fatalf("the guest was paused too few times for the test to mean anything: %v", p)
	}
	checkDump(t, m, dir, "paused")
}
