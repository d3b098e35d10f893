//go:build linux

package usernet

import (
	"net"

	"github.com/tamadump/tamadump/debugnet/linktest"
	"github.com/tamadump/tamadump/qemu/vhostuser"
)

// AttachVhost is the NIC's device for a QEMU `-netdev vhost-user`
// connection (see package vhostuser): the stack's frames go into the
// guest's receive ring, a burst with one notification, and the guest's
// into the stack. With faults f they go through a linktest.Path both
// ways, as with AttachStream, which it returns for the caller to close
// after the device. It returns at once; the device runs until conn ends.
func (s *Stack) AttachVhost(conn *net.UnixConn, f linktest.Faults) (*vhostuser.Device, *linktest.Path) {
	if f.None() {
		d := vhostuser.Serve(conn, s.Inject)
		s.AttachBatched(d.Queue, d.Flush)
		return d, nil
	}
	var d *vhostuser.Device
	p := linktest.NewPath(f, func(frame []byte, dir linktest.Direction) {
		if dir == linktest.Out {
			s.Inject(frame)
			return
		}
		d.Queue(frame)
		d.Flush()
	})
	d = vhostuser.Serve(conn, func(frame []byte) { p.Carry(frame, linktest.Out) })
	s.AttachBatched(func(frame []byte) { p.Carry(frame, linktest.In) }, func() {})
	return d, p
}
