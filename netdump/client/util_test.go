package client

import "net/netip"

func netipMust(s string) netip.Addr { return netip.MustParseAddr(s) }
func netipZero() netip.Addr         { return netip.Addr{} }
