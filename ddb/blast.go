package ddb

import (
	"net/netip"
	"strconv"

	"github.com/tamadump/tamadump/debugnet"
)

// Blaster is a machine that can send raw UDP through its NIC: the shell's
// blast command, which measures what the NIC path carries without the
// netdump protocol on it.
type Blaster interface {
	// Blast sends bytes of UDP payload to server's port through the NIC
	// the dump would use, from the dump's client address.
	Blast(server netip.Addr, port uint16, bytes int64) (debugnet.BlastStats, error)
}

// BlastPort is the sink's port when blast has no -p: discard.
const BlastPort = 9

const blastUsage = "usage: blast -s server [-p port] MiB\n"

// blast is "blast -s server [-p port] MiB": it sends MiB mebibytes of UDP
// and prints what it sent and how long it took.
func (s *Shell) blast(argv [][]byte) {
	b, ok := s.m.(Blaster)
	if !ok {
		s.p.S("blast: this machine cannot send raw UDP\n")
		return
	}
	var (
		server netip.Addr
		port   = uint16(BlastPort)
		mib    = -1
	)
	for i := 0; i < len(argv); i++ {
		a := argv[i]
		switch {
		case (equal(a, "-s") || equal(a, "-p")) && i+1 < len(argv):
			i++
			if a[1] == 's' {
				addr, ok := parseAddr(argv[i])
				if !ok {
					s.p.S("blast: -s: ").Quote(argv[i]).S(" is not an IPv4 or IPv6 address\n")
					return
				}
				server = addr
				continue
			}
			p, err := strconv.ParseUint(string(argv[i]), 10, 16)
			if err != nil || p == 0 {
				s.p.S("blast: -p: ").Quote(argv[i]).S(" is not a port\n")
				return
			}
			port = uint16(p)
		case a[0] != '-' && mib < 0:
			n, err := strconv.Atoi(string(a))
			if err != nil || n <= 0 || n > 1<<20 {
				s.p.S("blast: ").Quote(a).S(" is not a number of MiB\n")
				return
			}
			mib = n
		default:
			s.p.S("blast: unexpected argument ").Quote(a).S("\n").S(blastUsage)
			return
		}
	}
	if !server.IsValid() || mib < 0 {
		s.p.S(blastUsage)
		return
	}
	s.p.Flush()
	st, err := b.Blast(server, port, int64(mib)<<20)
	if err != nil {
		s.p.S("blast: ").S(err.Error()).S("\n")
		return
	}
	s.p.S("blast: sent ").U(st.Bytes).S(" bytes in ").U(st.Datagrams).S(" datagrams to ").IP(server).
		S(" port ").U(uint64(port)).S(" in ").U(uint64(st.Elapsed / 1000)).S(" us, ").
		U(st.Refused).S(" refused by the NIC\n")
}
