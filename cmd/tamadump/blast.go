package main

import (
	"errors"
	"net/netip"

	"github.com/tamadump/tamadump/debugnet"
)

var errBlastBoard = errors.New("this board's NIC belongs to its own network stack until a crash")

// Blast is the shell's blast command: UDP through the dump's driver and
// NIC, from the dump's client address (or the client setting), with the
// network stack held off the NIC meanwhile; the payloads are the start of
// the RAM, read as a dump reads it.
func (img *image) Blast(server netip.Addr, port uint16, n int64) (debugnet.BlastStats, error) {
	if img.dumper == nil {
		return debugnet.BlastStats{}, errNoNIC
	}
	if img.nic.Lend == nil {
		return debugnet.BlastStats{}, errBlastBoard
	}
	cfg, ok := img.dumper.Config()
	if !ok {
		return debugnet.BlastStats{}, errNotConfigured
	}
	src, addr, err := img.dumper.Sample(blastSample)
	if err != nil {
		return debugnet.BlastStats{}, err
	}
	img.nic.Lend.Lock()
	defer img.nic.Lend.Unlock()
	conn, err := debugnet.New(img.nic.NIC, debugnet.Config{
		Client: cfg.Client, Server: server, Gateway: cfg.Gateway, ClientPort: cfg.ClientPort,
		Clock: cfg.Clock, Console: img.out,
	}, func(uint16, []byte) {})
	if err != nil {
		return debugnet.BlastStats{}, err
	}
	if err := conn.Connect(); err != nil {
		return debugnet.BlastStats{}, err
	}
	return conn.Blast(port, n, src, addr)
}

// blastSample is how much of the RAM the blast sends, in turn.
const blastSample = 16 << 20
