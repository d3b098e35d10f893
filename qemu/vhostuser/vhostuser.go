//go:build linux

// Package vhostuser is the host end of a QEMU `-netdev vhost-user`: a
// virtio-net device whose rings this process works on in the guest's
// memory, shared with it (a memfd), instead of QEMU copying each frame
// to a socket. It offers checksum offload (VIRTIO_NET_F_CSUM), which
// QEMU's socket and stream back ends cannot: the guest's driver then
// sends pages in place and leaves the UDP checksum to the device, which
// completes it here. A kick from the guest is an eventfd write that QEMU
// forwards to this process without a VM exit of its own.
//
// QEMU side, for Serve on a connection accepted on a unix socket at S,
// with the guest's RAM (N MiB) in a shared memory backend:
//
//	-object memory-backend-memfd,id=ram,size=NM,share=on -machine memory-backend=ram
//	-chardev socket,id=vu,path=S -netdev vhost-user,id=n0,chardev=vu
package vhostuser

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"slices"
	"sync"
	"sync/atomic"
	"unsafe"

	"golang.org/x/sys/unix"
	"gvisor.dev/gvisor/pkg/tcpip/checksum"
)

// Requests of the vhost-user protocol this device answers.
const (
	reqGetFeatures   = 1
	reqSetFeatures   = 2
	reqSetOwner      = 3
	reqResetOwner    = 4
	reqSetMemTable   = 5
	reqSetVringNum   = 8
	reqSetVringAddr  = 9
	reqSetVringBase  = 10
	reqGetVringBase  = 11
	reqSetVringKick  = 12
	reqSetVringCall  = 13
	reqSetVringErr   = 14
	reqGetProtoFeat  = 15
	reqSetProtoFeat  = 16
	reqSetVringEnab  = 18
	flagVersion      = 0x1
	flagReply        = 0x4
	vringNoFD        = 0x100
	vringIndexMask   = 0xff
	maxRegions       = 8
	hdrSize          = 12
	maxMsg           = 4096
	rxQueue, txQueue = 0, 1
)

// Feature bits offered: checksum offload and the modern layout; no
// merged buffers, indirect descriptors, event index or control queue,
// which the guest's driver does not use. Protocol features (none of
// them) are offered because QEMU enables rings with SET_VRING_ENABLE,
// which needs them.
const (
	featCSUM      = 1 << 0
	featMrgRxbuf  = 1 << 15
	featAnyLayout = 1 << 27
	featProtocol  = 1 << 30
	featVersion1  = 1 << 32
	offered       = featCSUM | featAnyLayout | featProtocol | featVersion1
)

// Descriptor and header flags.
const (
	descNext      = 1
	descWrite     = 2
	availNoIntr   = 1
	hdrNeedsCsum  = 1
	maxFrame      = 65550
	maxChainDescs = 64
)

// ErrProtocol reports a message this device does not understand or
// accept; the connection ends with it.
var ErrProtocol = errors.New("vhostuser: protocol error")

// region is a piece of guest memory, mapped here.
type region struct {
	place
	mem []byte
}

// place is where a region is: guest-physical and QEMU-virtual addresses
// of the same bytes, at off in the file dev/ino.
type place struct{ gpa, uva, size, off, dev, ino uint64 }

// ring is one split virtqueue as the guest laid it out. QEMU starts a
// ring with SET_VRING_KICK (its addresses and base set before) and stops
// it with GET_VRING_BASE, each time the VM pauses and resumes; it
// enables it apart from that, and may do so while it is stopped, before
// new addresses and memory. The device works on it only while it is both.
type ring struct {
	num                uint16
	addrs              [3]uint64 // QEMU's addresses of desc, used and avail
	desc, avail, used  []byte    // addrs in the current memory table
	lastAvail, usedIdx uint16
	kick, call         *os.File
	enabled, started   bool
	ready              bool // enabled, started and mapped
}

// setReadyLocked updates r.ready and reports whether the ring just
// became ready: work the guest queued meanwhile (its kick may have come
// while the ring was stopped) is then to be done without a new kick.
func (r *ring) setReadyLocked() bool {
	was := r.ready
	r.ready = r.enabled && r.started && r.desc != nil
	return r.ready && !was
}

// Device is the virtio-net device of one QEMU connection.
type Device struct {
	conn *net.UnixConn
	in   func(frame []byte) // frames the guest sent

	mu      sync.Mutex // the rings and memory, between the kick goroutines and Send
	regions []region
	rings   [2]ring
	hdrLen  int
	pending [][]byte   // frames for the guest, behind their header, waiting for an RX buffer
	spare   [][]byte   // buffers delivered frames were in, for the next ones
	tx      []byte     // a transmitted frame, gathered
	txMu    sync.Mutex // one transmit at a time: tx and in are its own while mu is let go
	done    chan struct{}
	err     error
}

// Serve answers QEMU's messages on conn until it closes, passing every
// frame the guest transmits to in (valid during the call, from one
// goroutine at a time). It returns at once. A message it cannot carry
// out closes the connection, which QEMU reports, rather than leave QEMU
// waiting for a reply; Err then says what it was.
func Serve(conn *net.UnixConn, in func(frame []byte)) *Device {
	d := &Device{conn: conn, in: in, hdrLen: 10, tx: make([]byte, 0, maxFrame+hdrSize), done: make(chan struct{})}
	go func() {
		err := d.serve()
		if err != nil {
			d.conn.Close()
		}
		d.mu.Lock()
		d.err = err
		d.mu.Unlock()
		close(d.done)
	}()
	return d
}

// Err waits for the connection to end and says why (nil: QEMU closed it).
func (d *Device) Err() error {
	<-d.done
	return d.err
}

func (d *Device) serve() error {
	buf := make([]byte, hdrSize+maxMsg)
	oob := make([]byte, unix.CmsgSpace(4*maxRegions))
	for {
		n, oobn, _, _, err := d.conn.ReadMsgUnix(buf[:hdrSize], oob)
		if err == io.EOF || n == 0 || errors.Is(err, net.ErrClosed) {
			return nil // QEMU, or Close, ended it
		}
		if err != nil {
			return err
		}
		fds, err := parseFDs(oob[:oobn])
		if err != nil {
			return err
		}
		if n < hdrSize {
			return fmt.Errorf("%w: short header", ErrProtocol)
		}
		req := binary.LittleEndian.Uint32(buf)
		size := binary.LittleEndian.Uint32(buf[8:])
		if size > maxMsg {
			closeAll(fds)
			return fmt.Errorf("%w: %d-byte payload", ErrProtocol, size)
		}
		p := buf[hdrSize : hdrSize+int(size)]
		if _, err := io.ReadFull(d.conn, p); err != nil {
			closeAll(fds)
			return err
		}
		reply, err := d.handle(req, p, fds)
		if err != nil {
			return err
		}
		if reply != nil {
			var h [hdrSize]byte
			binary.LittleEndian.PutUint32(h[:], req)
			binary.LittleEndian.PutUint32(h[4:], flagVersion|flagReply)
			binary.LittleEndian.PutUint32(h[8:], uint32(len(reply)))
			if _, err := d.conn.Write(append(h[:], reply...)); err != nil {
				return err
			}
		}
	}
}

func parseFDs(oob []byte) ([]int, error) {
	if len(oob) == 0 {
		return nil, nil
	}
	msgs, err := unix.ParseSocketControlMessage(oob)
	if err != nil {
		return nil, err
	}
	var fds []int
	for _, m := range msgs {
		f, err := unix.ParseUnixRights(&m)
		if err == nil {
			fds = append(fds, f...)
		}
	}
	return fds, nil
}

func closeAll(fds []int) {
	for _, fd := range fds {
		unix.Close(fd)
	}
}

func u64(v uint64) []byte { return binary.LittleEndian.AppendUint64(nil, v) }

// handle carries out one request and returns its reply (nil: none).
// Only the memory table and the ring fds come with fds; any others are
// closed.
func (d *Device) handle(req uint32, p []byte, fds []int) ([]byte, error) {
	switch req {
	case reqSetMemTable:
		return nil, d.setMemTable(p, fds)
	case reqSetVringKick, reqSetVringCall, reqSetVringErr:
		if len(p) < 8 {
			closeAll(fds)
			return nil, fmt.Errorf("%w: request %d with %d bytes", ErrProtocol, req, len(p))
		}
		return nil, d.setRingFD(req, binary.LittleEndian.Uint64(p), fds)
	}
	closeAll(fds)
	switch req {
	case reqGetFeatures:
		return u64(offered), nil
	case reqSetFeatures:
		if len(p) < 8 {
			return nil, fmt.Errorf("%w: features in %d bytes", ErrProtocol, len(p))
		}
		f := binary.LittleEndian.Uint64(p)
		d.mu.Lock()
		d.hdrLen = 10
		if f&(featVersion1|featMrgRxbuf) != 0 {
			d.hdrLen = 12
		}
		d.mu.Unlock()
	case reqGetProtoFeat:
		return u64(0), nil
	case reqSetOwner, reqResetOwner, reqSetProtoFeat:
	case reqSetVringAddr:
		if len(p) < 40 {
			return nil, fmt.Errorf("%w: ring addresses in %d bytes", ErrProtocol, len(p))
		}
		return nil, d.setRingAddr(p)
	case reqSetVringNum, reqSetVringBase, reqSetVringEnab, reqGetVringBase:
		return d.ringState(req, p)
	default:
		return nil, fmt.Errorf("%w: request %d", ErrProtocol, req)
	}
	return nil, nil
}

// ringState carries out a request whose argument is a vhost_vring_state:
// a ring's index and a value.
func (d *Device) ringState(req uint32, p []byte) ([]byte, error) {
	if len(p) < 8 {
		return nil, fmt.Errorf("%w: ring state in %d bytes", ErrProtocol, len(p))
	}
	i, v := binary.LittleEndian.Uint32(p), binary.LittleEndian.Uint32(p[4:])
	// A ring has at most 32768 entries; its base is a free-running
	// 16-bit index.
	if i > txQueue || req == reqSetVringNum && v > 1<<15 || v > 0xffff {
		return nil, fmt.Errorf("%w: ring %d, value %d", ErrProtocol, i, v)
	}
	d.mu.Lock()
	r := &d.rings[i]
	var reply []byte
	switch req {
	case reqSetVringNum:
		r.num = uint16(v)
	case reqSetVringBase:
		r.lastAvail, r.usedIdx = uint16(v), uint16(v)
	case reqGetVringBase:
		r.started = false
		reply = binary.LittleEndian.AppendUint32(binary.LittleEndian.AppendUint32(nil, i), uint32(r.lastAvail))
	case reqSetVringEnab:
		r.enabled = v != 0
	}
	poke := r.setReadyLocked()
	d.mu.Unlock()
	if poke {
		d.poke(int(i))
	}
	return reply, nil
}

// setMemTable maps the guest's memory regions, one fd each.
func (d *Device) setMemTable(p []byte, fds []int) error {
	defer closeAll(fds)
	if len(p) < 8 {
		return fmt.Errorf("%w: memory table of %d bytes", ErrProtocol, len(p))
	}
	n := int(binary.LittleEndian.Uint32(p))
	if n > maxRegions || len(p) < 8+32*n || len(fds) != n {
		return fmt.Errorf("%w: %d memory regions, %d fds", ErrProtocol, n, len(fds))
	}
	rs := make([]region, n)
	for i := range rs {
		e := p[8+32*i:]
		rs[i].place = place{gpa: binary.LittleEndian.Uint64(e), size: binary.LittleEndian.Uint64(e[8:]), uva: binary.LittleEndian.Uint64(e[16:]), off: binary.LittleEndian.Uint64(e[24:])}
		var st unix.Stat_t
		if err := unix.Fstat(fds[i], &st); err != nil {
			return err
		}
		rs[i].dev, rs[i].ino = st.Dev, st.Ino
	}
	d.mu.Lock()
	same := slices.EqualFunc(rs, d.regions, func(a, b region) bool { return a.place == b.place })
	d.mu.Unlock()
	if same {
		// QEMU sends the table on every start (each time the VM
		// resumes): the same memory stays mapped.
		return nil
	}
	for i := range rs {
		r := &rs[i]
		mem, err := unix.Mmap(fds[i], 0, int(r.off+r.size), unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED)
		if err != nil {
			unmap(rs[:i])
			return fmt.Errorf("vhostuser: mapping guest memory: %w", err)
		}
		r.mem = mem[r.off:]
	}
	d.mu.Lock()
	old := d.regions
	d.regions = rs
	// Rings move to the new mapping; the old one goes away below.
	var err error
	for i := range d.rings {
		if r := &d.rings[i]; r.desc != nil && !d.mapRingLocked(r) {
			err = fmt.Errorf("%w: ring %d outside the new memory table", ErrProtocol, i)
		}
	}
	d.mu.Unlock()
	unmap(old)
	return err
}

func unmap(rs []region) {
	for _, r := range rs {
		unix.Munmap(r.mem[:cap(r.mem)]) //nolint:errcheck // nothing to do about it
	}
}

// at is the n bytes at guest-physical gpa (uva if virt), or nil if they
// are not all in one region.
func (d *Device) at(a uint64, n uint64, virt bool) []byte {
	for _, r := range d.regions {
		base := r.gpa
		if virt {
			base = r.uva
		}
		if a >= base && a-base <= r.size && n <= r.size-(a-base) {
			return r.mem[a-base : a-base+n : a-base+n]
		}
	}
	return nil
}

func (d *Device) setRingAddr(p []byte) error {
	i := binary.LittleEndian.Uint32(p)
	if i > txQueue {
		return fmt.Errorf("%w: ring %d", ErrProtocol, i)
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	r := &d.rings[i]
	for k := range r.addrs {
		r.addrs[k] = binary.LittleEndian.Uint64(p[8+8*k:])
	}
	if !d.mapRingLocked(r) {
		return fmt.Errorf("%w: ring %d of %d entries outside guest memory", ErrProtocol, i, r.num)
	}
	return nil
}

// mapRingLocked finds r's addresses in the memory table; false (and the
// ring unusable) if they are not there.
func (d *Device) mapRingLocked(r *ring) bool {
	num := uint64(r.num)
	desc := d.at(r.addrs[0], 16*num, true)
	used := d.at(r.addrs[1], 4+8*num, true)
	avail := d.at(r.addrs[2], 4+2*num, true)
	if num == 0 || desc == nil || used == nil || avail == nil {
		r.desc, r.used, r.avail, r.ready = nil, nil, nil, false
		return false
	}
	r.desc, r.used, r.avail = desc, used, avail
	return true
}

func (d *Device) setRingFD(req uint32, v uint64, fds []int) error {
	i := v & vringIndexMask
	if i > txQueue || (v&vringNoFD == 0) != (len(fds) == 1) || len(fds) > 1 {
		closeAll(fds)
		return fmt.Errorf("%w: ring %d fd request %d with %d fds", ErrProtocol, i, req, len(fds))
	}
	var f *os.File
	if len(fds) == 1 {
		// Non-blocking, so that the runtime polls it and Close ends a
		// read in progress.
		if err := unix.SetNonblock(fds[0], true); err != nil {
			unix.Close(fds[0])
			return err
		}
		f = os.NewFile(uintptr(fds[0]), "vhost-user eventfd")
	}
	if req == reqSetVringErr {
		if f != nil {
			f.Close()
		}
		return nil
	}
	d.mu.Lock()
	r := &d.rings[i]
	if req == reqSetVringCall {
		if r.call != nil {
			r.call.Close()
		}
		r.call = f
		d.mu.Unlock()
		return nil
	}
	if r.kick != nil {
		r.kick.Close()
	}
	r.kick = f
	r.started = f != nil
	poke := r.setReadyLocked()
	d.mu.Unlock()
	if f != nil {
		go d.kicks(int(i), f)
	}
	if poke {
		d.poke(int(i))
	}
	return nil
}

// kicks works on ring i each time the guest kicks it, until its fd is
// closed.
func (d *Device) kicks(i int, f *os.File) {
	var b [8]byte
	for {
		if _, err := f.Read(b[:]); err != nil {
			return
		}
		d.poke(i)
	}
}

// poke works on ring i: the guest queued frames or posted buffers.
func (d *Device) poke(i int) {
	if i == txQueue {
		d.transmit()
		return
	}
	d.mu.Lock()
	d.deliverLocked()
	d.mu.Unlock()
}

// notifyLocked signals the guest that r's used ring moved, unless it
// asked not to be (a polling driver).
func (r *ring) notifyLocked() {
	if r.call != nil && r.availWord()&availNoIntr == 0 {
		var one [8]byte
		one[0] = 1
		r.call.Write(one[:]) //nolint:errcheck // a lost interrupt is the guest's poll's to catch
	}
}

// availWord loads avail.flags and avail.idx (the high half) at once,
// atomically: the guest's ring entries are visible once its idx is (the
// hosts QEMU runs on are little-endian).
func (r *ring) availWord() uint32 { return atomic.LoadUint32((*uint32)(unsafe.Pointer(&r.avail[0]))) }

func (r *ring) availIdx() uint16 { return uint16(r.availWord() >> 16) }

// putUsed returns descriptor chain id with n bytes written, and
// publishes used.idx after the entry (used.flags stays 0: the device
// wants every kick).
func (r *ring) putUsed(id uint16, n uint32) {
	e := r.used[4+8*uint64(r.usedIdx%r.num):]
	binary.LittleEndian.PutUint32(e, uint32(id))
	binary.LittleEndian.PutUint32(e[4:], n)
	r.usedIdx++
	atomic.StoreUint32((*uint32)(unsafe.Pointer(&r.used[0])), uint32(r.usedIdx)<<16)
}

// chain walks the descriptor chain at head, calling fn with each
// buffer's bytes and whether the device may write it; false if the chain
// is malformed.
func (d *Device) chain(r *ring, head uint16, fn func(b []byte, write bool) bool) bool {
	id := head
	for range maxChainDescs {
		if id >= r.num {
			return false
		}
		e := r.desc[16*uint64(id):]
		addr, n := binary.LittleEndian.Uint64(e), binary.LittleEndian.Uint32(e[8:])
		flags, next := binary.LittleEndian.Uint16(e[12:]), binary.LittleEndian.Uint16(e[14:])
		b := d.at(addr, uint64(n), false)
		if b == nil || !fn(b, flags&descWrite != 0) {
			return false
		}
		if flags&descNext == 0 {
			return true
		}
		id = next
	}
	return false
}

// transmit takes every frame the guest queued, completes its checksum if
// its header asks, and passes it on.
func (d *Device) transmit() {
	d.txMu.Lock()
	defer d.txMu.Unlock()
	d.mu.Lock()
	defer d.mu.Unlock()
	r := &d.rings[txQueue]
	moved := false
	// ready is checked again after each frame: the lock is let go while
	// the frame is passed on, and Close may have unmapped the rings.
	for r.ready && r.lastAvail != r.availIdx() {
		head := binary.LittleEndian.Uint16(r.avail[4+2*uint64(r.lastAvail%r.num):])
		r.lastAvail++
		d.tx = d.tx[:0]
		ok := d.chain(r, head, func(b []byte, write bool) bool {
			if write || len(d.tx)+len(b) > cap(d.tx) {
				return false
			}
			d.tx = append(d.tx, b...)
			return true
		})
		r.putUsed(head, 0)
		moved = true
		if ok && len(d.tx) > d.hdrLen {
			if frame, ok := completeChecksum(d.tx, d.hdrLen); ok {
				d.mu.Unlock()
				d.in(frame)
				d.mu.Lock()
			}
		}
	}
	if moved && r.ready {
		r.notifyLocked()
	}
}

// completeChecksum strips the virtio_net_hdr from b and, if it asks,
// stores the Internet checksum of the frame from csum_start at
// csum_start+csum_offset (where the guest put the pseudo-header's sum).
func completeChecksum(b []byte, hdrLen int) ([]byte, bool) {
	h, frame := b[:hdrLen], b[hdrLen:]
	if h[0]&hdrNeedsCsum == 0 {
		return frame, true
	}
	start, off := int(binary.LittleEndian.Uint16(h[6:])), int(binary.LittleEndian.Uint16(h[8:]))
	if start+off+2 > len(frame) {
		return nil, false
	}
	binary.BigEndian.PutUint16(frame[start+off:], ^checksum.Checksum(frame[start:], 0))
	return frame, true
}

// Queue holds a frame for the guest (a few hundred at most; more are
// dropped, as a NIC drops what it has no buffer for); Flush moves the
// held frames into its receive buffers, as far as it posted them, and
// tells it once. The frame is copied.
func (d *Device) Queue(frame []byte) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if len(d.pending) >= maxPending {
		return
	}
	var b []byte
	if k := len(d.spare); k > 0 {
		b, d.spare = d.spare[k-1][:0], d.spare[:k-1]
	}
	var hdr [12]byte
	if d.hdrLen == 12 {
		hdr[10] = 1 // num_buffers
	}
	d.pending = append(d.pending, append(append(b, hdr[:d.hdrLen]...), frame...))
}

func (d *Device) Flush() {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.deliverLocked()
}

// maxPending bounds the frames held for a guest that posts no buffers.
const maxPending = 1024

// deliverLocked moves pending frames into the guest's receive buffers.
func (d *Device) deliverLocked() {
	r := &d.rings[rxQueue]
	if !r.ready {
		return
	}
	moved := false
	for len(d.pending) > 0 && r.lastAvail != r.availIdx() {
		head := binary.LittleEndian.Uint16(r.avail[4+2*uint64(r.lastAvail%r.num):])
		r.lastAvail++
		src := d.pending[0]
		total := 0
		d.chain(r, head, func(b []byte, write bool) bool {
			if !write {
				return false
			}
			n := copy(b, src[total:])
			total += n
			return total < len(src)
		})
		d.spare = append(d.spare, src)
		d.pending[0] = nil
		d.pending = d.pending[1:]
		r.putUsed(head, uint32(total))
		moved = true
	}
	if moved {
		r.notifyLocked()
	}
}

// Close ends the connection; the kick goroutines end with their fds.
func (d *Device) Close() error {
	err := d.conn.Close()
	<-d.done
	d.mu.Lock()
	defer d.mu.Unlock()
	for i := range d.rings {
		r := &d.rings[i]
		for _, f := range []*os.File{r.kick, r.call} {
			if f != nil {
				f.Close()
			}
		}
		r.kick, r.call, r.started, r.ready = nil, nil, false, false
	}
	unmap(d.regions)
	d.regions = nil
	return err
}
