package client

import (
	"github.com/tamadump/tamadump/netdump/ekcd"
	"github.com/tamadump/tamadump/netdump/wire"
)

// encryption is the client's part of an encrypted dump (Config.Encrypt):
// the key blob goes out right after the HERALD, as FreeBSD's client sends
// it, so that a dump cut short can still be decrypted; the VMCORE payloads
// are encrypted in file order at their first transmission, and a
// retransmission encrypts the same bytes again from the position saved for
// its slot.
type encryption struct {
	pos  []ekcd.Pos // per slot: where its payload starts in the stream
	body paddedBody
}

// paddedBody extends a body with zeros to a whole number of cipher blocks.
type paddedBody struct {
	Body
	size int64
}

func (p *paddedBody) Size() int64 { return p.size }

func (p *paddedBody) Chunk(off int64, max int) []byte {
	if n := p.Body.Size(); off < n {
		return p.Body.Chunk(off, max)
	}
	return zeroPage[:min(int64(max), p.size-off, int64(len(zeroPage)))]
}

// setupEncryption makes the per-slot positions; New calls it.
func (c *Client) setupEncryption() {
	if c.cfg.Encrypt == nil {
		return
	}
	c.enc.pos = make([]ekcd.Pos, len(c.slots))
}

// prepareEncryption pads body for the cipher, starts the dump's stream
// (a new IV) and puts the key's size into the header.
func (c *Client) prepareEncryption(body Body, kdh *wire.KernelDumpHeader) (Body, error) {
	e := c.cfg.Encrypt
	if e == nil {
		kdh.DumpKeySize = 0
		return body, nil
	}
	n := body.Size()
	c.enc.body = paddedBody{Body: body, size: (n + ekcd.BlockSize - 1) / ekcd.BlockSize * ekcd.BlockSize}
	if err := e.Start(c.enc.body.size); err != nil {
		return nil, err
	}
	kdh.DumpKeySize = uint32(len(e.KeyBlob()))
	return &c.enc.body, nil
}

// sendKey queues the EKCD_KEY messages.
func (c *Client) sendKey() error {
	if c.cfg.Encrypt == nil {
		return nil
	}
	blob := c.cfg.Encrypt.KeyBlob()
	for off := 0; off < len(blob); off += c.payload {
		n := min(c.payload, len(blob)-off)
		if err := c.push(wire.Header{Type: wire.EKCDKey, Offset: uint64(off), Len: uint32(n)}); err != nil {
			return err
		}
	}
	return nil
}

// elides reports whether zero pages are declared instead of sent: by
// default, but with encryption only if asked for, since the declarations
// show which pages are zero.
func (c *Client) elides() bool {
	return !c.cfg.SendZeros && (c.cfg.Encrypt == nil || c.cfg.ElideEncrypted)
}

// skipEncrypted moves the stream past a declared zero run.
func (c *Client) skipEncrypted(n int64) error {
	if c.cfg.Encrypt == nil {
		return nil
	}
	return c.cfg.Encrypt.Skip(n)
}

// encryptPayload encrypts the VMCORE payload d of s in place, or copies the
// key blob's piece into the EKCD_KEY payload d.
func (c *Client) encryptPayload(s *slot, d []byte) error {
	e := c.cfg.Encrypt
	if e == nil {
		return nil
	}
	switch s.h.Type {
	case wire.EKCDKey:
		copy(d, e.KeyBlob()[s.h.Offset:])
	case wire.VMCore:
		p := &c.enc.pos[s.h.Seqno%uint32(len(c.enc.pos))]
		if s.tries == 0 {
			*p = e.Pos()
			return e.Next(d, d)
		}
		return e.At(d, d, *p)
	}
	return nil
}
