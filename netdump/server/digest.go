package server

import (
	"crypto/sha256"
	"encoding"
	"encoding/hex"
	"fmt"
	"hash"
	"sync/atomic"
	"syscall"
)

// Digest budget: declared zero runs and holes are hashed as the zeros
// the file reads there, which costs CPU for bytes nobody sent. A session
// may hash zeroBase bytes of them plus zeroRatio per payload byte it
// received; beyond that its SHA-256 is not computed. Tamadump's client
// elides zero pages of a mostly empty RAM well within this; a 24-byte
// message declaring 4 GiB no longer buys seconds of CPU.
const (
	zeroBase  = 1 << 20
	zeroRatio = 64
	// snapEvery: the hash state is saved at these boundaries so that a
	// compressed dump cut back to its header's length after its padding
	// was hashed is hashed again from there, not from 0.
	snapEvery = 64 << 10
	// hashBufs is how many write-back buffers a session may have: one
	// fills while the writer and the hasher work through the others.
	// They are made as the pipeline needs them: a session that the
	// hasher keeps up with has a few. A deep pipeline lets each stage
	// run when a CPU is free: with 4 the jumbo load ran at 890 MB/s,
	// with 16 at 1,000.
	hashBufs = 16
	// hashQueue bounds the jobs waiting for the hasher; the session
	// waits when it is full.
	hashQueue = 4 * hashBufs
	// hashLag: when the hasher is this far behind what the session has
	// planned, new data is not handed to it in its buffer: the buffer
	// goes back once written and the data is hashed from the file when
	// the hasher has caught up. Held buffers would otherwise stop the
	// session, and its ACKs, until the hasher is done: after a long
	// zero run (hashed at about 1.3 GB/s) a mostly-zero 256 MiB dump
	// waited 190 ms for it. Data alone never puts the hasher further
	// behind than the buffers it holds, so at twice that a fast dump
	// keeps hashing from its buffers (reading back cost the jumbo load
	// a fifth of its speed).
	hashLag = 2 * hashBufs * writeBack
)

// zeros feeds zero runs and holes to the hash.
var zeros [64 << 10]byte

// A session's vmcore bytes go through a pipeline of three goroutines,
// so that on two CPUs receiving, writing and hashing overlap: the
// session fills a write-back buffer and hands it on; its writer
// writes it to the file; its hasher hashes it. The bytes of the file
// never change once received (the first arrival wins), so a byte is
// hashed once: from the write-back buffer that held it when it was
// written at the digest's next offset, else read back once when next
// reaches it. Work is proportional to the bytes received.

// wbuf is a write-back buffer in the pipeline: b holds the file's bytes
// from off; the writer and the hasher each drop a reference when done
// with it, and the last gives it back.
type wbuf struct {
	b    []byte
	off  uint64
	refs atomic.Int32
}

// writeJob is the writer's work: write buf, or report being drained.
type writeJob struct {
	buf   *wbuf
	seq   uint64 // the write's number, from 1
	drain bool
}

// hashJob is the hasher's work, in file order: hash [a, b) (zeros, the
// bytes buf holds, or bytes read back from the file once write number
// written is done), drop buf, or report being drained.
type hashJob struct {
	a, b    uint64
	zero    bool
	buf     *wbuf
	written uint64
	release bool
	drain   bool
}

// digest is the SHA-256 of the vmcore, computed in file order as its
// bytes become known, and the pipeline that writes and hashes them.
// The session plans the digest: [0, next) is hashed or queued to be.
type digest struct {
	zeroHash interface{ Add(float64) } // counts the zeros hashed
	next     uint64
	zeroLeft uint64 // zero bytes that may still be hashed
	failed   string // why the digest is not computed; "" while it is

	writes  chan writeJob
	hashes  chan hashJob
	free    chan *wbuf    // buffers both stages are done with
	made    int           // buffers made
	idle    chan struct{} // a stage reached a drain job
	done    chan struct{} // a stage returned
	sent    uint64        // writes queued
	written atomic.Uint64 // writes done
	wrote   chan struct{} // signalled after each write
	quit    atomic.Bool   // the hasher skips its work: the dump ended
	hashed  atomic.Uint64 // where the hasher is, after its last job

	// Set by the writer at its first failure, then read by the session
	// once werr is set.
	werrOff uint64
	werrErr error
	werr    atomic.Bool

	h *hasher // the session may use it only while drained
}

// hasher is the state the hasher goroutine owns.
type hasher struct {
	h        hash.Hash
	next     uint64
	core     coreFile
	readBack interface{ Add(float64) }
	rbuf     []byte
	failed   string

	snap    []byte // hash state at snapAt
	snapAt  uint64
	prev    []byte // the snapshot before it
	prevAt  uint64
	haveSnp int
}

// newDigest starts the writer and hasher of a session whose vmcore is
// core; the writer sets dirty after writing.
func newDigest(core coreFile, dirty *atomic.Bool, zeroHash, readBack interface{ Add(float64) }, stopped func() bool) *digest {
	d := &digest{
		zeroHash: zeroHash,
		zeroLeft: zeroBase,
		writes:   make(chan writeJob, hashBufs),
		hashes:   make(chan hashJob, hashQueue),
		free:     make(chan *wbuf, hashBufs),
		idle:     make(chan struct{}),
		done:     make(chan struct{}, 2),
		wrote:    make(chan struct{}, 1),
		h:        &hasher{h: sha256.New(), core: core, readBack: readBack},
	}
	d.h.snapshot()
	go d.runWriter(core, dirty)
	go d.runHasher(func() bool { return d.quit.Load() || stopped() })
	return d
}

// unref drops a reference to w; the last gives it back.
func (d *digest) unref(w *wbuf) {
	if w.refs.Add(-1) == 0 {
		w.b = w.b[:0]
		d.free <- w
	}
}

// runWriter is the writer goroutine. After a failure it writes nothing
// more (the dump fails), but keeps the pipeline moving.
func (d *digest) runWriter(core coreFile, dirty *atomic.Bool) {
	defer func() { d.done <- struct{}{} }()
	for j := range d.writes {
		if j.drain {
			d.idle <- struct{}{}
			continue
		}
		data, off := j.buf.b, j.buf.off
		for len(data) > 0 && !d.werr.Load() {
			n, err := core.WriteAt(data, int64(off))
			if n > 0 {
				dirty.Store(true)
			}
			if err != nil {
				d.werrOff, d.werrErr = off+uint64(n), err
				d.werr.Store(true)
			}
			data, off = data[n:], off+uint64(n)
		}
		d.written.Store(j.seq)
		select {
		case d.wrote <- struct{}{}:
		default:
		}
		d.unref(j.buf)
	}
}

// writeErr reports the writer's failure: where and why.
func (d *digest) writeErr() (uint64, error, bool) {
	if !d.werr.Load() {
		return 0, nil, false
	}
	return d.werrOff, d.werrErr, true
}

// runHasher is the hasher goroutine.
func (d *digest) runHasher(quit func() bool) {
	defer func() { d.done <- struct{}{} }()
	for j := range d.hashes {
		switch {
		case j.drain:
			d.idle <- struct{}{}
		case j.release:
			d.unref(j.buf)
		case quit():
		default:
			for !j.zero && j.buf == nil && d.written.Load() < j.written {
				<-d.wrote
			}
			d.h.job(j, quit)
			d.hashed.Store(d.h.next)
		}
	}
}

// buffer is an empty write-back buffer: one given back, a new one, or
// when hashBufs are in the pipeline the first given back.
func (d *digest) buffer() *wbuf {
	select {
	case w := <-d.free:
		return w
	default:
	}
	if d.made < hashBufs {
		d.made++
		return &wbuf{b: make([]byte, 0, writeBack)}
	}
	return <-d.free
}

// hand queues w, holding the file's bytes from off, to be written and
// hashed as far as cov is contiguous from next.
func (d *digest) hand(w *wbuf, off uint64, cov *spans) {
	w.off = off
	w.refs.Store(2)
	d.sent++
	d.writes <- writeJob{buf: w, seq: d.sent}
	if d.advance(cov, w, false, 0) {
		d.hashes <- hashJob{buf: w, release: true}
	} else {
		d.unref(w)
	}
}

// drainWrites waits until the writer has written every buffer handed
// on, so that the file holds them.
func (d *digest) drainWrites() {
	d.writes <- writeJob{drain: true}
	<-d.idle
}

// drain waits until both stages have done every job queued; until the
// next job the session may use d.h.
func (d *digest) drain() {
	d.drainWrites()
	d.hashes <- hashJob{drain: true}
	<-d.idle
}

// stop ends the pipeline: what was handed on is written, queued
// hashing is skipped.
func (d *digest) stop() {
	d.quit.Store(true)
	close(d.writes)
	close(d.hashes)
	<-d.done
	<-d.done
}

// earn grants the zero budget of n payload bytes received.
func (d *digest) earn(n int) { d.zeroLeft += uint64(n) * zeroRatio }

func (d *digest) fail(format string, args ...any) {
	if d.failed == "" {
		d.failed = fmt.Sprintf(format, args...)
	}
}

// advance queues the hashing of what cov holds from next on: the bytes
// that w (if not nil) holds from it, other data read back from the file
// once written. With final, ranges never received below size are holes
// and hashed as zeros, and hashing stops at size. Until final it queues
// nothing while the hasher is hashLag behind. It says whether a job
// holds w.
func (d *digest) advance(cov *spans, w *wbuf, final bool, size uint64) (holdsW bool) {
	if h := d.hashed.Load(); !final && d.next > h && d.next-h > hashLag {
		return false
	}
	for d.failed == "" {
		r, ok := cov.at(d.next)
		if !ok {
			if !final || d.next >= size {
				return
			}
			// A hole up to the next range (or the end).
			r = span{d.next, size, zeroKind}
			if n, ok := cov.after(d.next); ok && n.start < size {
				r.end = n.start
			}
		}
		end := r.end
		if final {
			end = min(end, size)
			if end <= d.next {
				return
			}
		}
		if r.kind == zeroKind {
			n := end - d.next
			if n > d.zeroLeft {
				d.fail("not computed (declared zeros and holes exceed %d times the data received)", zeroRatio)
				return
			}
			d.zeroLeft -= n
			d.zeroHash.Add(float64(n))
			d.hashes <- hashJob{a: d.next, b: end, zero: true}
			d.next = end
			continue
		}
		// Data: the part before w from the file, then w's part, then
		// the file again.
		var off, wEnd uint64
		if w != nil {
			off, wEnd = w.off, w.off+uint64(len(w.b))
		}
		for d.next < end {
			j := hashJob{a: d.next, b: end, written: d.sent}
			switch {
			case d.next < off:
				j.b = min(end, off)
			case d.next < wEnd:
				j.b = min(end, wEnd)
				j.buf, holdsW = w, true
			}
			d.hashes <- j
			d.next = j.b
		}
	}
	return holdsW
}

// truncated notes that the file was cut to size; the hasher must be
// drained. When bytes beyond it were hashed already, the hash restarts
// from a saved state at or below size, if one is at hand.
func (d *digest) truncated(size uint64) {
	if d.failed != "" || size >= d.next {
		return
	}
	h := d.h
	if h.failed == "" {
		for i, at := range []uint64{h.snapAt, h.prevAt} {
			if i < h.haveSnp && at <= size {
				state := h.snap
				if i == 1 {
					state = h.prev
				}
				if err := h.h.(encoding.BinaryUnmarshaler).UnmarshalBinary(state); err != nil {
					break
				}
				h.next, d.next = at, at
				h.haveSnp = 0
				return
			}
		}
	}
	d.fail("not computed (the file was cut to %d bytes after %d were hashed)", size, d.next)
}

// sum is the SHA256 line's value; the hasher must be drained.
func (d *digest) sum() string {
	if d.failed != "" {
		return d.failed
	}
	if d.h.failed != "" {
		return d.h.failed
	}
	return hex.EncodeToString(d.h.h.Sum(nil))
}

// job hashes [j.a, j.b), which starts at h.next.
func (h *hasher) job(j hashJob, quit func() bool) {
	for a := j.a; a < j.b && h.failed == "" && !quit(); {
		n := int(min(j.b-a, uint64(len(zeros))))
		var b []byte
		switch {
		case j.zero:
			b = zeros[:n]
		case j.buf != nil:
			b = j.buf.b[a-j.buf.off : a-j.buf.off+uint64(n)]
		default:
			if h.rbuf == nil {
				h.rbuf = make([]byte, len(zeros))
			}
			k, err := h.core.ReadAt(h.rbuf[:n], int64(a))
			h.readBack.Add(float64(k))
			if k < n {
				if err == nil {
					err = syscall.EIO
				}
				h.failed = fmt.Sprintf("not computed (%s)", strerror(err))
				return
			}
			b = h.rbuf[:n]
		}
		h.write(b)
		a += uint64(n)
	}
}

// write hashes b at next, saving the state at snapshot boundaries.
func (h *hasher) write(b []byte) {
	for len(b) > 0 {
		k := len(b)
		if left := snapEvery - h.next%snapEvery; uint64(k) > left {
			k = int(left)
		}
		h.h.Write(b[:k])
		h.next += uint64(k)
		b = b[k:]
		if h.next%snapEvery == 0 {
			h.snapshot()
		}
	}
}

func (h *hasher) snapshot() {
	h.prev, h.snap = h.snap, h.prev
	h.prevAt = h.snapAt
	var err error
	h.snap, err = h.h.(encoding.BinaryAppender).AppendBinary(h.snap[:0])
	if err != nil {
		h.failed = fmt.Sprintf("not computed (%s)", err)
		return
	}
	h.snapAt = h.next
	h.haveSnp = min(h.haveSnp+1, 2)
}
