package client

import (
	"github.com/tamadump/tamadump/debugnet"
	"github.com/tamadump/tamadump/netdump/ekcd"
	"github.com/tamadump/tamadump/netdump/wire"
)

// resolution names the answer the endpoint waits for to find the next
// hop, for the console.
func resolution(conn *debugnet.Conn) string {
	if conn.IPv6() {
		return "neighbour advertisement"
	}
	return "ARP reply"
}

// refit sets the payload per datagram from the endpoint's, in New and
// after Retarget (the family may have changed: an IPv6 header is 20 bytes
// longer), keeping it a whole number of cipher blocks when encrypting.
func (c *Client) refit() {
	c.payload = min(c.conn.MaxPayload()-wire.HeaderSize, wire.MaxPayload)
	if c.cfg.Encrypt != nil {
		c.payload -= c.payload % ekcd.BlockSize
	}
}
