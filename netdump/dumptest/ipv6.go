package dumptest

import (
	"net/netip"
	"testing"

	"github.com/tamadump/tamadump/qemu/usernet"
)

// The IPv6 addresses of the in-process network.
var (
	ServerPrefix6 = netip.MustParsePrefix("fd00:9::1/64")
	ClientAddr6   = netip.MustParseAddr("fd00:9::2")
)

// NewServer6 is NewServer on a host that also has ServerPrefix6, with the
// server listening there.
func NewServer6(tb testing.TB, mtu int) *Server {
	return newServer(tb, usernet.Config{Addr: ServerPrefix, Addr6: ServerPrefix6, MTU: uint32(mtu)}, ServerPrefix6.Addr())
}
