// Package usernet is the tests' user-space network host: a board/netstack
// host whose frames are exchanged with a QEMU `-netdev dgram` socket
// (AttachDgram), a QEMU `-netdev stream` connection (AttachStream) or a
// `-netdev vhost-user` device (AttachVhost), the last two optionally
// through a lossy linktest.Path, and on which Network puts a netdump
// server, so a guest can dump to a server that needs no host networking.
// It is host-side only.
//
// QEMU side, for AttachDgram(conn bound at H, peer Q):
//
//	-netdev dgram,id=n0,local.type=unix,local.path=Q,remote.type=unix,remote.path=H
//
// and for AttachStream(c, f), c accepted on a unix socket listening at S:
//
//	-netdev stream,id=n0,server=off,addr.type=unix,addr.path=S
package usernet

import (
	"errors"

	"github.com/tamadump/tamadump/board/netstack"
)

// Stack is the user-space host.
type Stack struct {
	*netstack.Stack
}

// Config describes the host.
type Config = netstack.Config

// DefaultMTU is the IP MTU when Config.MTU is 0.
const DefaultMTU = netstack.DefaultMTU

// New starts a host.
func New(cfg Config) (*Stack, error) {
	s, err := netstack.New(cfg)
	if err != nil {
		return nil, err
	}
	return &Stack{s}, nil
}

var errNotLocal = errors.New("usernet: not this host's address")
