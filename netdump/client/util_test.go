package client

import (
	"net/netip"
	"runtime"
)

func netipMust(s string) netip.Addr { return netip.MustParseAddr(s) }
func netipZero() netip.Addr         { return netip.Addr{} }

func yield() { runtime.Gosched() }
