// Package gdbprof profiles an amd64 guest under QEMU through its gdbstub:
// each sample stops the guest, reads its registers, walks its frame
// pointers (Go keeps them on amd64) and lets it run again. Under TCG the
// guest stops at the end of a translated block, so a sample lands after
// the instruction that ended it: an MMIO access counts the device model's
// work, in the vCPU thread, to the access. Frames without a frame pointer
// (assembly leaves) hide their caller.
package gdbprof

import (
	"bufio"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"strings"
	"time"
)

// Stub is a connection to QEMU's gdbstub. QEMU stops the guest while a
// debugger attaches; Dial lets it run again.
type Stub struct {
	conn net.Conn
	r    *bufio.Reader
	w    *bufio.Writer
}

// Dial connects to the gdbstub at addr on network ("unix" or "tcp") and
// resumes the guest.
func Dial(network, addr string) (*Stub, error) {
	c, err := net.DialTimeout(network, addr, 10*time.Second)
	if err != nil {
		return nil, err
	}
	s := &Stub{conn: c, r: bufio.NewReader(c), w: bufio.NewWriter(c)}
	if _, err := s.call("?"); err != nil { // the stop reason: a stopped guest
		c.Close()
		return nil, err
	}
	if err := s.send("c"); err != nil {
		c.Close()
		return nil, err
	}
	return s, nil
}

// Close stops the guest and detaches, which lets it run on, and
// disconnects. (A running guest's stub takes any byte for an interrupt.)
func (s *Stub) Close() error {
	err := s.interrupt()
	if err == nil {
		_, err = s.call("D")
	}
	return errors.Join(err, s.conn.Close())
}

// interrupt stops the running guest and reads the stop reply.
func (s *Stub) interrupt() error {
	if err := s.w.WriteByte(0x03); err != nil {
		return err
	}
	if err := s.w.Flush(); err != nil {
		return err
	}
	_, err := s.recv()
	return err
}

// send writes one packet: $data#checksum.
func (s *Stub) send(data string) error {
	var sum byte
	for i := 0; i < len(data); i++ {
		sum += data[i]
	}
	fmt.Fprintf(s.w, "$%s#%02x", data, sum)
	return s.w.Flush()
}

// recv reads the next packet, acknowledging it; the stub's own '+'
// acknowledgements before it are skipped.
func (s *Stub) recv() (string, error) {
	s.conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	for {
		c, err := s.r.ReadByte()
		if err != nil {
			return "", err
		}
		if c != '$' {
			continue
		}
		body, err := s.r.ReadString('#')
		if err != nil {
			return "", err
		}
		if _, err := s.r.Discard(2); err != nil { // the checksum
			return "", err
		}
		if err := s.w.WriteByte('+'); err != nil {
			return "", err
		}
		return strings.TrimSuffix(body, "#"), s.w.Flush()
	}
}

// call sends a request and returns its reply. A stop reply in its place
// is a stop the stub reported late (the guest stopped for another
// reason as well); no reply to a request here starts with T or S.
func (s *Stub) call(data string) (string, error) {
	if err := s.send(data); err != nil {
		return "", err
	}
	for {
		r, err := s.recv()
		if err != nil || data == "?" || r == "" || r[0] != 'T' && r[0] != 'S' {
			return r, err
		}
	}
}

// le decodes a little-endian register or memory word from hex.
func le(h string) (uint64, error) {
	b, err := hex.DecodeString(h)
	if err != nil || len(b) != 8 {
		return 0, fmt.Errorf("gdbprof: bad word %q", h)
	}
	var v uint64
	for i := 7; i >= 0; i-- {
		v = v<<8 | uint64(b[i])
	}
	return v, nil
}

// The x86-64 'g' reply: rax rbx rcx rdx rsi rdi rbp rsp r8-r15 rip ...,
// 8 bytes each, as 16 hex digits.
const (
	regRBP = 6
	regRIP = 16
)

// Sample interrupts the guest, reads its PC and up to depth return
// addresses along the frame-pointer chain, and resumes it.
func (s *Stub) Sample(depth int) ([]uint64, error) {
	if err := s.interrupt(); err != nil {
		return nil, err
	}
	regs, err := s.call("g")
	if err != nil {
		return nil, err
	}
	if len(regs) < (regRIP+1)*16 {
		return nil, fmt.Errorf("gdbprof: register reply of %d digits", len(regs))
	}
	pc, err := le(regs[regRIP*16 : regRIP*16+16])
	if err != nil {
		return nil, err
	}
	bp, err := le(regs[regRBP*16 : regRBP*16+16])
	if err != nil {
		return nil, err
	}
	stack := []uint64{pc}
	for len(stack) <= depth && bp >= 0x1000 {
		m, err := s.call(fmt.Sprintf("m%x,10", bp))
		if err != nil {
			return nil, err
		}
		if len(m) != 32 { // an error reply: the chain left mapped memory
			break
		}
		next, err1 := le(m[:16])
		ret, err2 := le(m[16:])
		if err1 != nil || err2 != nil || ret == 0 {
			break
		}
		stack = append(stack, ret)
		if next <= bp { // frames go up the stack
			break
		}
		bp = next
	}
	return stack, s.send("c")
}

// Profile samples every interval until stop is closed; on an error it
// returns what it has with the error.
func (s *Stub) Profile(every time.Duration, depth int, stop <-chan struct{}) (*Profile, error) {
	p := &Profile{Every: every}
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-stop:
			return p, nil
		case <-t.C:
		}
		st, err := s.Sample(depth)
		if err != nil {
			return p, err
		}
		p.Stacks = append(p.Stacks, st)
	}
}

// QEMUArgs give QEMU a gdbstub on the Unix socket path, which works
// across network namespaces, without waiting for a debugger.
func QEMUArgs(path string) []string {
	return []string{"-chardev", "socket,path=" + path + ",server=on,wait=off,id=gdbprof", "-gdb", "chardev:gdbprof"}
}

// Run samples the guest behind the gdbstub at path every interval until
// stop is closed, then detaches.
func Run(path string, every time.Duration, depth int, stop <-chan struct{}) (*Profile, error) {
	s, err := Dial("unix", path)
	if err != nil {
		return nil, err
	}
	p, err := s.Profile(every, depth, stop)
	return p, errors.Join(err, s.Close())
}
