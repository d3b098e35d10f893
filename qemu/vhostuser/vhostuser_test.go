//go:build linux

package vhostuser

import (
	"bytes"
	"encoding/binary"
	"errors"
	"net"
	"os"
	"testing"
	"time"

	"golang.org/x/sys/unix"
	"gvisor.dev/gvisor/pkg/tcpip/checksum"
)

// front is QEMU's end of a connection, for the tests: it sends requests
// (with fds) and reads replies.
type front struct {
	t *testing.T
	c *net.UnixConn
}

func pair(t *testing.T, in func([]byte)) (*front, *Device) {
	t.Helper()
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM, 0)
	if err != nil {
		t.Fatal(err)
	}
	conn := func(fd int) *net.UnixConn {
		f := os.NewFile(uintptr(fd), "socketpair")
		defer f.Close()
		c, err := net.FileConn(f)
		if err != nil {
			t.Fatal(err)
		}
		return c.(*net.UnixConn)
	}
	q, dev := conn(fds[0]), conn(fds[1])
	d := Serve(dev, in)
	t.Cleanup(func() { q.Close(); d.Close() })
	return &front{t, q}, d
}

func (f *front) send(req uint32, p []byte, fds ...int) {
	f.t.Helper()
	h := make([]byte, hdrSize, hdrSize+len(p))
	binary.LittleEndian.PutUint32(h, req)
	binary.LittleEndian.PutUint32(h[4:], flagVersion)
	binary.LittleEndian.PutUint32(h[8:], uint32(len(p)))
	var oob []byte
	if len(fds) > 0 {
		oob = unix.UnixRights(fds...)
	}
	if _, _, err := f.c.WriteMsgUnix(append(h, p...), oob, nil); err != nil {
		f.t.Fatal(err)
	}
}

func (f *front) reply() []byte {
	f.t.Helper()
	f.c.SetReadDeadline(time.Now().Add(5 * time.Second))
	h := make([]byte, hdrSize)
	if _, err := f.c.Read(h); err != nil {
		f.t.Fatal(err)
	}
	p := make([]byte, binary.LittleEndian.Uint32(h[8:]))
	if _, err := f.c.Read(p); err != nil {
		f.t.Fatal(err)
	}
	return p
}

func le(vs ...uint64) []byte {
	var b []byte
	for _, v := range vs {
		b = binary.LittleEndian.AppendUint64(b, v)
	}
	return b
}

func pair32(a, b uint32) []byte {
	return binary.LittleEndian.AppendUint32(binary.LittleEndian.AppendUint32(nil, a), b)
}

// TestBadRequests: an unknown request, a memory table whose fds do not
// match its regions and rings outside the guest's memory end the
// connection with ErrProtocol instead of being half-taken.
func TestBadRequests(t *testing.T) {
	for name, send := range map[string]func(f *front){
		"unknown request": func(f *front) { f.send(99, nil) },
		"regions without fds": func(f *front) {
			f.send(reqSetMemTable, append(pair32(1, 0), le(0, 1<<20, 0x7f0000000000, 0)...))
		},
		"ring outside memory": func(f *front) {
			f.send(reqSetVringNum, pair32(0, 256))
			f.send(reqSetVringAddr, append(pair32(0, 0), le(0x1000, 0x2000, 0x3000, 0)...))
		},
		"a ring that does not exist": func(f *front) { f.send(reqSetVringNum, pair32(7, 256)) },
	} {
		t.Run(name, func(t *testing.T) {
			f, d := pair(t, func([]byte) {})
			f.send(reqGetFeatures, nil)
			if got := binary.LittleEndian.Uint64(f.reply()); got&featCSUM == 0 || got&featVersion1 == 0 {
				t.Fatalf("features %#x lack checksum offload or VERSION_1", got)
			}
			send(f)
			if err := d.Err(); !errors.Is(err, ErrProtocol) {
				t.Fatalf("connection ended with %v, want ErrProtocol", err)
			}
		})
	}
}

// guest lays out a split virtqueue pair in a memfd as a guest driver
// would and drives the device through the protocol.
type guest struct {
	t     *testing.T
	f     *front
	mem   []byte
	memfd int
	kick  [2]int
	avail [2]uint16
}

const (
	guestBase = 0x100000 // guest-physical address of the memory
	guestUVA  = 0x7f0000000000
	guestSize = 1 << 20
	qsize     = 8
)

// ring offsets in mem: descriptors, avail, used, then buffers.
func ringAt(q int) (desc, avail, used int) {
	base := q * 0x4000
	return base, base + 0x1000, base + 0x2000
}
func bufAt(q, i int) int { return 0x10000 + (q*qsize+i)*0x1000 }

// guestMemory is a memfd of guestSize bytes, mapped.
func guestMemory(t *testing.T) (int, []byte) {
	fd, err := unix.MemfdCreate("guest", 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Close(fd) })
	if err := unix.Ftruncate(fd, guestSize); err != nil {
		t.Fatal(err)
	}
	mem, err := unix.Mmap(fd, 0, guestSize, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Munmap(mem) })
	return fd, mem
}

func newGuest(t *testing.T, in func([]byte)) (*guest, *Device) {
	f, d := pair(t, in)
	fd, mem := guestMemory(t)
	g := &guest{t: t, f: f, mem: mem, memfd: fd}
	f.send(reqSetFeatures, le(featCSUM|featVersion1|featProtocol))
	g.memTable(false)
	for q := range 2 {
		efd, err := unix.Eventfd(0, 0)
		if err != nil {
			t.Fatal(err)
		}
		g.kick[q] = efd
		t.Cleanup(func() { unix.Close(efd) })
		g.startRing(q, 0)
		f.send(reqSetVringEnab, pair32(uint32(q), 1))
	}
	return g, d
}

// startRing starts ring q at base as QEMU does: its size, base and
// addresses, its kick fd last.
func (g *guest) startRing(q int, base uint32) {
	desc, avail, used := ringAt(q)
	g.f.send(reqSetVringNum, pair32(uint32(q), qsize))
	g.f.send(reqSetVringBase, pair32(uint32(q), base))
	g.f.send(reqSetVringAddr, append(pair32(uint32(q), 0), le(guestUVA+uint64(desc), guestUVA+uint64(used), guestUVA+uint64(avail), 0)...))
	g.f.send(reqSetVringKick, le(uint64(q)), g.kick[q])
}

// post puts a one-descriptor chain for buffer i of ring q holding (or,
// for the receive ring, with room for) n bytes, publishes and kicks it.
func (g *guest) post(q, i, n int) {
	desc, avail, _ := ringAt(q)
	e := g.mem[desc+16*i:]
	binary.LittleEndian.PutUint64(e, guestBase+uint64(bufAt(q, i)))
	binary.LittleEndian.PutUint32(e[8:], uint32(n))
	flags := uint16(0)
	if q == rxQueue {
		flags = descWrite
	}
	binary.LittleEndian.PutUint16(e[12:], flags)
	binary.LittleEndian.PutUint16(g.mem[avail+4+2*int(g.avail[q]%qsize):], uint16(i))
	g.avail[q]++
	binary.LittleEndian.PutUint16(g.mem[avail+2:], g.avail[q])
	if _, err := unix.Write(g.kick[q], le(1)); err != nil {
		g.t.Fatal(err)
	}
}

// used is ring q's used.idx and its last entry.
func (g *guest) used(q int) (idx uint16, id, n uint32) {
	_, _, used := ringAt(q)
	idx = binary.LittleEndian.Uint16(g.mem[used+2:])
	if idx > 0 {
		e := g.mem[used+4+8*int((idx-1)%qsize):]
		id, n = binary.LittleEndian.Uint32(e), binary.LittleEndian.Uint32(e[4:])
	}
	return
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); !cond(); time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
	}
}

// TestRings: a frame the guest queues with a header asking for the UDP
// checksum arrives with the checksum completed over what the device read
// (the control: the same frame without the request keeps its partial
// sum), and its buffer comes back; a frame for the guest waits for a
// receive buffer, then lands in it behind a zero header.
func TestRings(t *testing.T) {
	frames := make(chan []byte, 4)
	g, d := newGuest(t, func(f []byte) { frames <- append([]byte(nil), f...) })
	frame := make([]byte, 80)
	for i := range frame {
		frame[i] = byte(i * 3)
	}
	const start, off = 34, 6 // the UDP header of an IPv4 frame, its checksum field
	for i, ask := range []bool{true, false} {
		b := g.mem[bufAt(txQueue, i):]
		clear(b[:12])
		if ask {
			b[0] = hdrNeedsCsum
			binary.LittleEndian.PutUint16(b[6:], start)
			binary.LittleEndian.PutUint16(b[8:], off)
		}
		copy(b[12:], frame)
		g.post(txQueue, i, 12+len(frame))
		var got []byte
		select {
		case got = <-frames:
		case <-time.After(5 * time.Second):
			t.Fatal("no frame from the guest")
		}
		// The field held the pseudo-header's sum, which a receiver adds.
		valid := checksum.Checksum(got[start:], binary.BigEndian.Uint16(frame[start+off:])) == 0xffff
		if len(got) != len(frame) || !bytes.Equal(got[:start], frame[:start]) || valid != ask {
			t.Errorf("frame %d (checksum asked %v): %d bytes, checksum valid %v", i, ask, len(got), valid)
		}
		if idx, id, _ := g.used(txQueue); idx != uint16(i+1) || id != uint32(i) {
			t.Errorf("frame %d: used idx %d id %d", i, idx, id)
		}
	}

	in := []byte("a frame for the guest, held until it posts a buffer")
	d.Queue(in)
	d.Flush()
	if idx, _, _ := g.used(rxQueue); idx != 0 {
		t.Fatalf("a frame delivered without a buffer")
	}
	g.post(rxQueue, 0, 2048)
	waitFor(t, "the received frame", func() bool { idx, _, _ := g.used(rxQueue); return idx == 1 })
	_, id, n := g.used(rxQueue)
	b := g.mem[bufAt(rxQueue, 0):]
	if id != 0 || int(n) != 12+len(in) || !bytes.Equal(b[12:12+len(in)], in) || b[10] != 1 {
		t.Errorf("received: id %d, %d bytes, %q, num_buffers %d", id, n, b[12:12+len(in)], b[10])
	}
}

// stop is QEMU stopping the device (the VM paused, by its monitor or a
// debugger): GET_VRING_BASE of each ring, which answers where the device
// is in the avail ring.
func (g *guest) stop() (rx, tx uint32) {
	g.f.send(reqGetVringBase, pair32(rxQueue, 0))
	rx = binary.LittleEndian.Uint32(g.f.reply()[4:])
	g.f.send(reqGetVringBase, pair32(txQueue, 0))
	tx = binary.LittleEndian.Uint32(g.f.reply()[4:])
	return
}

// restart is QEMU starting it again as it does on resume: the rings
// enabled first, then the features, the memory table (the same memory
// through a new fd, or if moved the guest's memory copied to a new file)
// and each ring from the bases stop answered, its kick fd last.
func (g *guest) restart(base [2]uint32, moved bool) {
	g.f.send(reqSetVringEnab, pair32(rxQueue, 1))
	g.f.send(reqSetVringEnab, pair32(txQueue, 1))
	g.f.send(reqSetFeatures, le(featCSUM|featVersion1|featProtocol))
	g.memTable(moved)
	for q := range 2 {
		g.startRing(q, base[q])
	}
}

// memTable sends the guest's memory table: its memory through a new fd,
// or if moved, copied to a new file.
func (g *guest) memTable(moved bool) {
	if moved {
		fd, mem := guestMemory(g.t)
		copy(mem, g.mem)
		g.memfd, g.mem = fd, mem
	}
	fd, err := unix.Dup(g.memfd)
	if err != nil {
		g.t.Fatal(err)
	}
	g.f.send(reqSetMemTable, append(pair32(1, 0), le(guestBase, guestSize, guestUVA, 0)...), fd)
}

// TestMemoryMoves: a memory table that moves the guest's memory while
// the rings run moves them with it (the old mapping is gone: a ring left
// on it would fault).
func TestMemoryMoves(t *testing.T) {
	frames := make(chan []byte, 4)
	g, _ := newGuest(t, func(f []byte) { frames <- append([]byte(nil), f...) })
	g.memTable(true)
	g.f.send(reqGetFeatures, nil) // its reply: the table was taken
	g.f.reply()
	clear(g.mem[bufAt(txQueue, 0) : bufAt(txQueue, 0)+12])
	g.post(txQueue, 0, 72)
	waitFor(t, "the frame sent from the moved memory", func() bool { idx, _, _ := g.used(txQueue); return idx == 1 })
	if len(frames) != 1 {
		t.Errorf("%d frames passed on, want 1", len(frames))
	}
}

// TestRestart: while QEMU has the device stopped, it leaves the rings
// alone, even once they are enabled again ahead of their new addresses,
// so that it resumes exactly where GET_VRING_BASE said: a frame the guest
// queued and kicked, and one for the guest held meanwhile, are each
// handled once when the rings start again, with no new kick, in the
// memory the new table maps (the same, or the guest's moved to a new
// file, whose old mapping the device then drops).
// Rings whose indices passed 32768 (and wrap during the test) resume
// from there too.
func TestRestart(t *testing.T) {
	for name, c := range map[string]struct {
		moved bool
		base  uint16
	}{"same memory": {}, "moved memory": {moved: true}, "indices past 32768": {base: 0xfffe}} {
		t.Run(name, func(t *testing.T) { testRestart(t, c.moved, c.base) })
	}
}

func testRestart(t *testing.T, moved bool, base uint16) {
	frames := make(chan []byte, 4)
	g, d := newGuest(t, func(f []byte) { frames <- append([]byte(nil), f...) })
	if base != 0 {
		// As if base frames had gone each way before a pause.
		g.stop()
		for q := range 2 {
			_, avail, used := ringAt(q)
			binary.LittleEndian.PutUint16(g.mem[avail+2:], base)
			binary.LittleEndian.PutUint16(g.mem[used+2:], base)
			g.avail[q] = base
		}
		g.restart([2]uint32{uint32(base), uint32(base)}, false)
	}

	g.post(rxQueue, 0, 2048)
	rx, tx := g.stop()
	if rx != uint32(base) || tx != uint32(base) {
		t.Fatalf("stopped at rx %d tx %d, want %d", rx, tx, base)
	}
	clear(g.mem[bufAt(txQueue, 0) : bufAt(txQueue, 0)+12])
	copy(g.mem[bufAt(txQueue, 0)+12:], make([]byte, 60))
	g.post(txQueue, 0, 72)
	d.Queue([]byte("held while stopped"))
	d.Flush()
	g.f.send(reqSetVringEnab, pair32(rxQueue, 1))
	g.f.send(reqSetVringEnab, pair32(txQueue, 1))
	d.Flush()
	time.Sleep(50 * time.Millisecond) // the kick's goroutine has had it
	if idx, _, _ := g.used(txQueue); idx != base {
		t.Fatalf("stopped, the device took a frame the guest queued (used idx %d)", idx)
	}
	if idx, _, _ := g.used(rxQueue); idx != base {
		t.Fatalf("stopped, the device filled a receive buffer (used idx %d)", idx)
	}
	if len(frames) != 0 {
		t.Fatal("stopped, the device passed a frame on")
	}
	g.restart([2]uint32{rx, tx}, moved)
	waitFor(t, "the frame queued while stopped", func() bool { idx, _, _ := g.used(txQueue); return idx == base+1 })
	waitFor(t, "the frame held while stopped", func() bool { idx, _, _ := g.used(rxQueue); return idx == base+1 })
	time.Sleep(50 * time.Millisecond)
	if len(frames) != 1 {
		t.Errorf("the guest's frame passed on %d times, want once", len(frames))
	}
}

// TestOneTransmitter: the ring is worked on from the kick's goroutine and,
// when a ring starts, from the protocol's; a frame being passed on is not
// overwritten by the next one meanwhile (each is checked after a pause,
// while pokes from another goroutine keep coming).
func TestOneTransmitter(t *testing.T) {
	bad := make(chan int, qsize)
	seen := make(chan int, qsize)
	g, d := newGuest(t, func(f []byte) {
		want := append([]byte(nil), f...)
		time.Sleep(2 * time.Millisecond)
		if !bytes.Equal(f, want) {
			bad <- int(want[0])
		}
		seen <- int(want[0])
	})
	for i := range qsize {
		b := g.mem[bufAt(txQueue, i):]
		clear(b[:12])
		for k := range 60 {
			b[12+k] = byte(i)
		}
	}
	done := make(chan struct{})
	go func() {
		for {
			select {
			case <-done:
				return
			default:
				d.poke(txQueue)
			}
		}
	}()
	for i := range qsize {
		g.post(txQueue, i, 72)
	}
	for range qsize {
		select {
		case <-seen:
		case <-time.After(5 * time.Second):
			t.Fatal("frames missing")
		}
	}
	close(done)
	if len(bad) > 0 {
		t.Errorf("%d frames changed while being passed on", len(bad))
	}
}
