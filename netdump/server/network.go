package server

import "github.com/tamadump/tamadump/netdump/transport"

// The sockets a Server uses (package transport).
type (
	Network    = transport.Network
	HeraldConn = transport.HeraldConn
	ClientConn = transport.ClientConn
	OSNetwork  = transport.OSNetwork
)
