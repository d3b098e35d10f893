package server

import (
	"bytes"
	"errors"
	"fmt"
	"math"
	"net/netip"
	"os"
	"os/exec"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/tamadump/tamadump/netdump/wire"
)

const (
	// writeBack is VMCORE_BUFSZ: contiguous payloads are gathered into one
	// pwrite of up to this many bytes.
	writeBack = 128 << 10
	// dotEvery: netdumpd logs "." at seqnos divisible by this ("about
	// every 16 MB at MTU 1500").
	dotEvery = 16 << 20 / 1456
	// lingerBuf is enough for a FINISHED; longer datagrams are truncated
	// and then fail the size check, as they should.
	lingerBuf = 64
)

// coreFile is what a session needs of its vmcore file (*os.File); tests
// interpose on it.
type coreFile interface {
	WriteAt(p []byte, off int64) (int, error)
	ReadAt(p []byte, off int64) (int, error)
	Truncate(size int64) error
	Sync() error
	Close() error
}

// session is one client's dump. Only its goroutine touches its state,
// except anyData and stopping, and ack, which the HERALD path also uses.
type session struct {
	s     *Server
	ip    netip.Addr
	host  string
	conn  ClientConn
	files *dumpFiles
	core  coreFile
	name  string // current vmcore base name (renamed by the KDH)
	key   *os.File

	anyData  atomic.Bool // a VMCORE or KDH arrived (a HERALD is then a new dump)
	stopping atomic.Bool // end as timed out (new HERALD, Close, eviction)

	lastValid time.Time
	buf       []byte
	ackBuf    [wire.AckSize]byte

	wb    []byte // write-back buffer holding [wbOff, wbOff+len(wb))
	wbOff uint64
	size  int64 // vmcore file size
	cov   rangeSet
	sum   runningSum

	kdhSeen bool
	kdhSeq  uint32
	kdh     wire.KernelDumpHeader
	kdhOK   bool // kdh holds a full header
	finSeq  uint32
}

func (s *Server) newSession(ip, dst netip.Addr, herald []byte) *session {
	host := s.hostName(ip)
	conn, err := s.cfg.Network.DialClient(dst, netip.AddrPortFrom(ip, s.cfg.AckPort))
	if err != nil {
		s.logf(LevelError, "netdump_cap_herald(): %s", strerror(err))
		return nil
	}
	if err := conn.SetReadBuffer(RecvBuffer); err != nil {
		s.logf(LevelError, "setsockopt(): %s", strerror(err))
		s.logf(LevelWarning, "May drop packets from %s due to small receive buffer", host)
	}
	var files *dumpFiles
	if herald != nil {
		if files, err = s.openDumpFiles(string(herald), host, ip.String()); err != nil {
			s.logf(LevelWarning, "Can't create output files in path for client %s [%s], retrying with default", host, ip)
		}
	}
	if files == nil {
		if files, err = s.openDumpFiles(s.cfg.DefaultPath, host, ip.String()); err != nil {
			s.logf(LevelError, "Can't create output files for new client %s [%s]", host, ip)
			conn.Close()
			return nil
		}
	}
	c := &session{
		s:         s,
		ip:        ip,
		host:      host,
		conn:      conn,
		files:     files,
		core:      files.core,
		name:      files.coreBase(host),
		lastValid: time.Now(),
		buf:       make([]byte, wire.HeaderSize+wire.MaxPayload),
	}
	c.sum.init()
	if s.cfg.wrapCore != nil {
		c.core = s.cfg.wrapCore(c.core)
	}
	return c
}

func (c *session) corePath() string { return c.files.path(c.name) }
func (c *session) infoPath() string { return c.files.path(c.files.infoBase(c.host)) }

func (c *session) printf(format string, args ...any) {
	fmt.Fprintf(c.files.info, format, args...)
}

// ack answers seqno; it may be called from any goroutine (a retransmitted
// HERALD is answered by the HERALD loop).
func (c *session) ack(seqno uint32) {
	b := make([]byte, wire.AckSize)
	wire.PutAck(b, seqno)
	c.send(b)
}

// ackOwn is ack for the session's goroutine, without allocating.
func (c *session) ackOwn(seqno uint32) {
	wire.PutAck(c.ackBuf[:], seqno)
	c.send(c.ackBuf[:])
}

func (c *session) send(b []byte) {
	// Lost ACKs are harmless: the client retransmits.
	if _, err := c.conn.Write(b); err != nil && !c.stopping.Load() {
		c.s.logf(LevelError, "send(): %s", strerror(err))
	}
}

// stop makes the session end as timed out (or, if it has completed,
// stop lingering). Any goroutine may call it.
func (c *session) stop() {
	c.stopping.Store(true)
	c.conn.Close()
}

// run serves the session until it ends.
func (c *session) run() {
	if c.serve() {
		c.linger()
	}
	c.conn.Close()
}

// serve handles datagrams until the dump ends; it reports whether the dump
// completed.
func (c *session) serve() bool {
	tpass, timeout := c.s.cfg.TPass, c.s.cfg.Timeout
	c.conn.SetReadDeadline(time.Now().Add(tpass))
	for {
		if c.stopping.Load() {
			c.timedOut()
			return false
		}
		n, err := c.conn.Read(c.buf)
		if err != nil {
			switch {
			case c.stopping.Load():
			case isTimeout(err):
				if time.Since(c.lastValid) <= timeout {
					c.conn.SetReadDeadline(time.Now().Add(tpass))
					continue
				}
			case errors.Is(err, syscall.ECONNREFUSED):
				// An ICMP port unreachable for an earlier ACK: the
				// client's port was closed for a moment. Not fatal.
				continue
			default:
				c.s.logf(LevelError, "recv(): %s", strerror(err))
			}
			c.timedOut()
			return false
		}
		if done, ok := c.message(c.buf[:n]); done {
			return ok
		}
	}
}

func isTimeout(err error) bool {
	var t interface{ Timeout() bool }
	return errors.As(err, &t) && t.Timeout()
}

// message handles one datagram; done reports the end of the dump and ok
// whether it completed.
func (c *session) message(b []byte) (done, ok bool) {
	if len(b) < wire.HeaderSize {
		c.s.logf(LevelError, "Ignoring runt packet from %s (got %d)", c.ip, len(b))
		return false, false
	}
	h, payload, err := wire.ParseMessage(b)
	switch {
	case err == wire.ErrType || err == nil && h.Type == wire.Herald:
		c.s.logf(LevelError, "Received unexpected message type %d from %s", uint32(h.Type), c.ip)
		return false, false
	case err != nil:
		c.s.logf(LevelError, "Bad packet size from %s", c.ip)
		return false, false
	}
	c.lastValid = time.Now()
	switch h.Type {
	case wire.VMCore:
		return !c.vmcore(h, payload), false
	case wire.KDH:
		return !c.kdhMsg(h, payload), false
	case wire.EKCDKey:
		c.keyMsg(h, payload)
	case wire.Finished:
		return true, c.finish(h)
	}
	return false, false
}

// vmcore buffers or declares dump bytes; false means the dump failed.
func (c *session) vmcore(h wire.Header, payload []byte) bool {
	if !c.anyData.Load() {
		c.anyData.Store(true)
	}
	if h.Seqno%dotEvery == 0 {
		c.s.logf(LevelInfo, ".")
	}
	n := uint64(len(payload))
	run, zero := h.ZeroRun()
	if zero {
		n = uint64(run)
	}
	if h.Offset > math.MaxInt64-n {
		c.writeError(h.Offset, syscall.EINVAL)
		return false
	}
	if zero {
		// Nothing is written: the file keeps a hole there. The buffer is
		// flushed first so that the running hash sees bytes in file
		// order.
		if !c.flush() {
			return false
		}
		c.cov.add(h.Offset, h.Offset+n)
		c.hash(h.Offset, n, nil)
		c.ackOwn(h.Seqno)
		return true
	}
	if n == 0 {
		c.ackOwn(h.Seqno)
		return true
	}
	if len(c.wb) > 0 && (c.wbOff+uint64(len(c.wb)) != h.Offset || len(c.wb)+len(payload) > cap(c.wb)) {
		if !c.flush() {
			return false
		}
	}
	if c.wb == nil {
		// Allocated with the first data, so that idle sessions (a
		// HERALD flood) stay small.
		c.wb = make([]byte, 0, writeBack)
	}
	if len(c.wb) == 0 {
		c.wbOff = h.Offset
	}
	c.wb = append(c.wb, payload...)
	c.cov.add(h.Offset, h.Offset+n)
	// Like netdumpd, ACK once buffered: a later write error ends the dump
	// and the client never gets its FINISHED acknowledged.
	c.ackOwn(h.Seqno)
	return true
}

// flush writes the write-back buffer; false means the dump failed.
func (c *session) flush() bool {
	if len(c.wb) == 0 {
		return true
	}
	// Compare with what is there before overwriting it.
	c.hash(c.wbOff, uint64(len(c.wb)), c.wb)
	data, off := c.wb, c.wbOff
	for len(data) > 0 {
		n, err := c.core.WriteAt(data, int64(off))
		if n > 0 {
			c.size = max(c.size, int64(off)+int64(n))
		}
		if err != nil {
			c.wb = c.wb[:0]
			c.writeError(off+uint64(n), err)
			return false
		}
		data, off = data[n:], off+uint64(n)
	}
	c.wb = c.wb[:0]
	return true
}

// hash feeds [off, off+n) — data, or zeros when data is nil — to the
// running SHA-256. A retransmission rewrites bytes already hashed; when
// they are the bytes already there (an honest client resends the same
// memory) the hash stands and only what lies beyond is new, so a lossy
// dump is not hashed again from the start at the end.
func (c *session) hash(off, n uint64, data []byte) {
	if next := c.sum.next; off < next && !c.sum.broken && c.unchanged(off, min(n, next-off), data) {
		skip := min(n, next-off)
		if skip == n {
			return
		}
		off, n = off+skip, n-skip
		if data != nil {
			data = data[skip:]
		}
	}
	c.sum.add(off, n, data)
}

// unchanged reports whether the file's [off, off+n) holds data[:n] (zeros
// when data is nil). It reads the file back: only retransmissions get here.
func (c *session) unchanged(off, n uint64, data []byte) bool {
	buf := make([]byte, min(n, 64<<10))
	for done := uint64(0); done < n; {
		k := min(uint64(len(buf)), n-done)
		if _, err := c.core.ReadAt(buf[:k], int64(off+done)); err != nil {
			return false
		}
		want := zeros[:k]
		if data != nil {
			want = data[done : done+k]
		}
		if !bytes.Equal(buf[:k], want) {
			return false
		}
		done += k
	}
	return true
}

// kdhMsg records the kernel dump header; false means the dump failed.
func (c *session) kdhMsg(h wire.Header, payload []byte) bool {
	if !c.anyData.Load() {
		c.anyData.Store(true)
	}
	if c.kdhSeen && h.Seqno == c.kdhSeq {
		// A retransmission: processing it again would repeat the info
		// block and the renames.
		c.ackOwn(h.Seqno)
		return true
	}
	c.kdhSeen, c.kdhSeq = true, h.Seqno
	c.s.logf(LevelInfo, "(KDH from %s [%s])", c.host, c.ip)
	c.ackOwn(h.Seqno)
	if len(payload) < wire.KDHSize {
		c.s.logf(LevelError, "Bad KDH from %s [%s]: packet too small", c.host, c.ip)
		c.printf("Bad KDH: packet too small\n")
		return true
	}
	parity := wire.Parity(payload[:wire.KDHSize])
	k := &c.kdh
	wire.ParseKDH(payload, k)
	c.kdhOK = true
	var b strings.Builder
	fmt.Fprintf(&b, "  Architecture: %s\n", cstr(k.Architecture[:]))
	fmt.Fprintf(&b, "  Architecture Version: %d\n", int32(k.ArchitectureVersion))
	fmt.Fprintf(&b, "  Dump Length: %dB (%d MB)\n", int64(k.DumpLength), int64(k.DumpLength)>>20)
	fmt.Fprintf(&b, "  Blocksize: %d\n", int32(k.BlockSize))
	fmt.Fprintf(&b, "  Compression: %s\n", compressionName(k.Compression))
	fmt.Fprintf(&b, "  Dumptime: %s\n", time.Unix(int64(k.DumpTime), 0).Local().Format(time.ANSIC))
	fmt.Fprintf(&b, "  Hostname: %s\n", cstr(k.Hostname[:]))
	vs := cstr(k.VersionString[:])
	if !strings.HasSuffix(vs, "\n") {
		// The kernel's string ends in a newline and netdumpd adds
		// none; keep the file line-structured anyway.
		vs += "\n"
	}
	fmt.Fprintf(&b, "  Version String: %s", vs)
	fmt.Fprintf(&b, "  Panic String: %s\n", cstr(k.PanicString[:]))
	check := "Pass"
	if parity != 0 {
		check = "Fail"
	}
	fmt.Fprintf(&b, "  Header Parity Check: %s\n", check)
	c.printf("%s", b.String())

	c.rename()
	if c.compressed() {
		// Block padding after the compressed stream confuses
		// decompressors.
		if !c.flush() {
			return false
		}
		c.truncate(int64(k.DumpLength))
	}
	return true
}

func (c *session) compressed() bool {
	return c.kdhOK && (c.kdh.Compression == wire.CompressGzip || c.kdh.Compression == wire.CompressZstd)
}

// rename gives the vmcore the name the header calls for:
// vmcore_encrypted.* for encrypted dumps, .gz/.zst for compressed ones.
// It is idempotent, unlike netdumpd's, which appends suffixes again.
func (c *session) rename() {
	name := c.files.coreBase(c.host)
	if c.kdh.DumpKeySize != 0 {
		name = fmt.Sprintf("vmcore_encrypted.%s.%d", c.host, c.files.index)
	}
	switch c.kdh.Compression {
	case wire.CompressGzip:
		name += ".gz"
	case wire.CompressZstd:
		name += ".zst"
	}
	if name == c.name {
		return
	}
	fd := int(c.files.dir.Fd())
	if err := unix.Renameat(fd, c.name, fd, name); err != nil {
		c.s.logf(LevelWarning, "Couldn't rename '%s' to '%s': %s", c.corePath(), c.files.path(name), strerror(err))
		return
	}
	c.name = name
}

func (c *session) truncate(size int64) {
	if size == c.size {
		return
	}
	if err := c.core.Truncate(size); err != nil {
		c.s.logf(LevelError, "ftruncate(): %s", strerror(err))
		return
	}
	c.size = size
	c.sum.truncated(uint64(size))
}

func compressionName(v uint8) string {
	switch v {
	case wire.CompressNone:
		return "none"
	case wire.CompressGzip:
		return "gzip"
	case wire.CompressZstd:
		return "zstd"
	}
	return "???"
}

// cstr is a header string field as netdumpd prints it: its last byte is
// forced to NUL first.
func cstr(field []byte) string {
	return string(wire.Text(field[:len(field)-1]))
}

// keyMsg stores a piece of the encryption key blob.
func (c *session) keyMsg(h wire.Header, payload []byte) {
	if c.key == nil {
		name := fmt.Sprintf("key.%s.%d", c.host, c.files.index)
		f, err := openAt(c.files.dir, name, unix.O_WRONLY|unix.O_CREAT, 0400)
		if err != nil {
			c.s.logf(LevelError, "openat(): %s", strerror(err))
			return
		}
		c.key = f
		c.s.logf(LevelInfo, "(EKCD key from %s [%s])", c.host, c.ip)
	}
	// netdumpd keeps 32 bits of the offset.
	if _, err := c.key.WriteAt(payload, int64(uint32(h.Offset))); err != nil {
		c.s.logf(LevelError, "write(): %s", strerror(err))
		return
	}
	c.ackOwn(h.Seqno)
}

// finish completes the dump; false means it failed.
func (c *session) finish(h wire.Header) bool {
	if !c.flush() {
		return false
	}
	// The file gets its full length even when it ends in a zero run;
	// a compressed one loses its block padding.
	want := int64(c.sum.end)
	if c.kdhOK {
		if c.compressed() {
			want = int64(c.kdh.DumpLength)
		} else {
			want = max(want, int64(c.kdh.DumpLength))
		}
	}
	if want >= 0 {
		c.truncate(want)
	}
	if err := c.core.Sync(); err != nil {
		c.s.logf(LevelError, "fsync(): %s", strerror(err))
	}
	c.printf("Missing ranges: %s\n", c.missing())
	c.printf("SHA256: %s\n", c.sum.finish(c.core, c.size))
	c.symlink("vmcore", c.name)
	c.symlink("info", c.files.infoBase(c.host))
	c.s.logf(LevelInfo, "Completed dump from client %s [%s]", c.host, c.ip)
	c.printf("Dump complete\n")
	c.finSeq = h.Seqno
	c.ackOwn(h.Seqno)
	c.end("success")
	return true
}

// missing lists the parts of the dump never received: of [0, dumplength)
// once the header is known, else up to the highest byte received.
func (c *session) missing() string {
	limit := c.sum.end
	if c.kdhOK {
		limit = c.kdh.DumpLength
	}
	return c.cov.missing(limit, maxMissingListed)
}

func (c *session) symlink(kind, target string) {
	fd := int(c.files.dir.Fd())
	link := kind + "." + c.host + ".last"
	if err := unix.Unlinkat(fd, link, 0); err != nil && err != unix.ENOENT {
		c.s.logf(LevelError, "unlinkat(): %s", strerror(err))
		return
	}
	if err := unix.Symlinkat(target, fd, link); err != nil {
		c.s.logf(LevelError, "symlink(): %s", strerror(err))
	}
}

// timedOut ends the dump as incomplete. Unlike netdumpd, buffered data
// is written first.
func (c *session) timedOut() {
	if !c.flush() {
		return
	}
	c.s.logf(LevelInfo, "Client %s timed out", c.ip)
	c.printf("Missing ranges: %s\n", c.missing())
	c.printf("Dump incomplete: client timed out\n")
	c.end("timeout")
}

// writeError ends the dump after a failed vmcore write at off.
func (c *session) writeError(off uint64, err error) {
	c.s.logf(LevelError, "pwrite (for client %s [%s]): %s", c.host, c.ip, strerror(err))
	c.printf("Dump unsuccessful: write error @ offset %08x: %s\n", off, strerror(err))
	c.end("error")
}

// end closes the files, runs the handler and forgets the session.
func (c *session) end(reason string) {
	c.s.ended(c)
	c.core.Close()
	c.files.info.Close()
	if c.key != nil {
		c.key.Close()
	}
	c.files.dir.Close()
	c.dumpEnded(reason)
	c.s.runHandler(reason, c.ip.String(), c.host, c.infoPath(), c.corePath())
	c.wb, c.buf = nil, nil
}

// linger keeps a completed session's socket open for the idle timeout so
// that a FINISHED retransmitted because our ACK was lost is acknowledged
// again (netdumpd's port is closed by then and the client reports
// failure).
func (c *session) linger() {
	if !c.s.linger(c) {
		return
	}
	defer c.s.unlinger(c)
	buf := make([]byte, lingerBuf)
	since := time.Now()
	for !c.stopping.Load() {
		c.conn.SetReadDeadline(time.Now().Add(c.s.cfg.TPass))
		n, err := c.conn.Read(buf)
		if err != nil {
			if isTimeout(err) || errors.Is(err, syscall.ECONNREFUSED) {
				if time.Since(since) > c.s.cfg.Timeout {
					return
				}
				continue
			}
			return
		}
		if h, _, err := wire.ParseMessage(buf[:n]); err == nil && h.Type == wire.Finished && h.Seqno == c.finSeq {
			c.ackOwn(h.Seqno)
		}
	}
}

// runHandler starts the -i script without waiting for it.
func (s *Server) runHandler(reason, ip, host, info, core string) {
	if s.cfg.Handler == "" {
		return
	}
	cmd := exec.Command(s.cfg.Handler, reason, ip, host, info, core)
	cmd.Env = []string{}
	cmd.Dir = s.cfg.Dir
	if err := cmd.Start(); err != nil {
		s.logf(LevelError, "netdump_cap_handler(): %s", strerror(err))
		return
	}
	s.handlerWG.Add(1)
	go func() {
		defer s.handlerWG.Done()
		cmd.Wait()
		status := int(cmd.ProcessState.Sys().(syscall.WaitStatus))
		if status == 0 {
			s.logf(LevelInfo, "Process %d exited with status 0", cmd.Process.Pid)
		} else {
			s.logf(LevelWarning, "Process %d exited with status %d", cmd.Process.Pid, status)
		}
	}()
}

// ensure *os.File stays a coreFile.
var _ coreFile = (*os.File)(nil)
