package client

import (
	"errors"
	"net/netip"

	"github.com/tamadump/tamadump/netdump/wire"
)

// Address family errors of Validate, made before any crash.
var (
	ErrFamily = errors.New("netdump: client, server and gateway must be all IPv4 or all IPv6")
	ErrMapped = errors.New("netdump: an IPv4-mapped IPv6 address: give the IPv4 address itself")
)

// checkFamily accepts IPv4 and IPv6 (debugnet speaks both), one family
// for all the addresses given.
func checkFamily(c *Config) error {
	addrs := [3]netip.Addr{c.Client, c.Server, c.Gateway}
	for _, a := range addrs {
		if a.Is4In6() {
			return ErrMapped
		}
	}
	if c.Client.IsValid() && c.Server.IsValid() && c.Client.Is4() != c.Server.Is4() ||
		c.Gateway.IsValid() && c.Client.IsValid() && c.Gateway.Is4() != c.Client.Is4() {
		return ErrFamily
	}
	return nil
}

// refit sets the payload per datagram after the endpoint's family may have
// changed (an IPv6 header is 20 bytes longer), keeping it a whole number
// of cipher blocks when encrypting.
func (c *Client) refit() {
	c.payload = min(c.conn.MaxPayload()-wire.HeaderSize, wire.MaxPayload)
	if c.cfg.Encrypt != nil {
		c.payload -= c.payload % 16
	}
}
