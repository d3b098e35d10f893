package ddb

import (
	"net/netip"
	"strings"
)

// maxArgs bounds the words on a command line; the longest valid command,
// dumpon with every option, has 10.
const maxArgs = 16

// split cuts line into space-separated words, stored in argv. It reports
// false if there are more than len(argv) words.
func split(line []byte, argv *[maxArgs][]byte) ([][]byte, bool) {
	n := 0
	for i := 0; i < len(line); {
		for i < len(line) && line[i] == ' ' {
			i++
		}
		start := i
		for i < len(line) && line[i] != ' ' {
			i++
		}
		if i == start {
			break
		}
		if n == len(argv) {
			return nil, false
		}
		argv[n] = line[start:i]
		n++
	}
	return argv[:n], true
}

// parseIPv4 parses a dotted quad such as 10.0.2.15 without allocating.
// Unlike inet_aton it refuses short forms and leading zeros, which
// inet_aton would read as octal: a typo should not become another address.
func parseIPv4(b []byte) (netip.Addr, bool) {
	var a [4]byte
	i := 0
	for k := range a {
		if k > 0 {
			if i == len(b) || b[i] != '.' {
				return netip.Addr{}, false
			}
			i++
		}
		start, v := i, 0
		for i < len(b) && i-start < 3 && b[i] >= '0' && b[i] <= '9' {
			v = v*10 + int(b[i]-'0')
			i++
		}
		if i == start || v > 255 || (i-start > 1 && b[start] == '0') {
			return netip.Addr{}, false
		}
		a[k] = byte(v)
	}
	if i != len(b) {
		return netip.Addr{}, false
	}
	return netip.AddrFrom4(a), true
}

// looksIPv6 tells an IPv6 address from a mistyped IPv4 one, for a better
// message: it has a colon and only hex digits, colons and dots.
func looksIPv6(b []byte) bool {
	colon := false
	for _, c := range b {
		switch {
		case c == ':':
			colon = true
		case c == '.', c >= '0' && c <= '9', c >= 'a' && c <= 'f', c >= 'A' && c <= 'F':
		default:
			return false
		}
	}
	return colon
}

func equal(b []byte, s string) bool { return string(b) == s } // compiles to a comparison, no copy

// options are the flags of dumpon and netdump as typed; a nil slice or the
// zero Addr means the flag was not given.
type options struct {
	server, client, gateway netip.Addr
	path                    []byte // -p (dumpon)
	nic                     []byte // the interface: dumpon's operand, netdump's -i
	key, cipher             []byte // -k public key, -C cipher (dumpon)
	elide                   bool   // -E: zero pages declared even when encrypting
}

// command describes one configuring command for parseOptions.
type command struct {
	name    string
	flags   string // accepted flag letters
	operand bool   // the interface is an operand, not -i
	usage   string
}

var (
	dumponCmd = command{
		name:    "dumpon",
		flags:   "scgpkCE",
		operand: true,
		usage:   "usage: dumpon -s server -c client [-g gateway] [-p path] [-k pubkey [-C cipher] [-E]] iface | dumpon off",
	}
	netdumpCmd = command{
		name:  "netdump",
		flags: "scgi",
		usage: "usage: netdump -s server [-c client] [-g gateway] [-i iface]",
	}
)

// parseOptions parses argv (without the command name). On error it prints
// a message naming the flag or argument at fault and reports false.
// It does not allocate.
func (s *Shell) parseOptions(cmd *command, argv [][]byte) (o options, ok bool) {
	for i := 0; i < len(argv); i++ {
		a := argv[i]
		if a[0] != '-' {
			if !cmd.operand || o.nic != nil {
				s.begin(cmd)
				s.p.S("unexpected argument ")
				s.p.Quote(a)
				return o, s.end(cmd, true)
			}
			o.nic = a
			continue
		}
		if len(a) != 2 || strings.IndexByte(cmd.flags, a[1]) < 0 {
			s.begin(cmd)
			s.p.S("unknown flag ")
			s.p.Quote(a)
			return o, s.end(cmd, true)
		}
		if a[1] == 'E' {
			o.elide = true
			continue
		}
		if i+1 == len(argv) {
			s.beginFlag(cmd, a)
			s.p.S("missing value; expected ")
			s.p.S(valueName(a[1]))
			return o, s.end(cmd, true)
		}
		i++
		v := argv[i]
		switch a[1] {
		case 'p':
			if o.path != nil {
				return o, s.twice(cmd, a)
			}
			if r := pathProblem(v); r != "" {
				s.beginFlag(cmd, a)
				if len(v) > MaxPath {
					s.p.S("path ") // too long to be worth echoing
				} else {
					s.p.Quote(v)
					s.p.Byte(' ')
				}
				s.p.S(r)
				return o, s.end(cmd, false)
			}
			o.path = v
		case 'i':
			if o.nic != nil {
				return o, s.twice(cmd, a)
			}
			o.nic = v
		case 'k':
			if o.key != nil {
				return o, s.twice(cmd, a)
			}
			o.key = v
		case 'C':
			if o.cipher != nil {
				return o, s.twice(cmd, a)
			}
			o.cipher = v
		default:
			dst := &o.server
			switch a[1] {
			case 'c':
				dst = &o.client
			case 'g':
				dst = &o.gateway
			}
			if dst.IsValid() {
				return o, s.twice(cmd, a)
			}
			addr, ok := parseAddr(v)
			if !ok {
				s.beginFlag(cmd, a)
				s.p.Quote(v)
				if looksIPv6(v) {
					s.p.S(` is not a valid IPv6 address (hex groups, at most one "::", no zone)`)
				} else {
					s.p.S(" is not an IPv4 or IPv6 address")
				}
				return o, s.end(cmd, false)
			}
			if r := addrProblem(addr); r != "" {
				s.beginFlag(cmd, a)
				s.p.IP(addr)
				s.p.Byte(' ')
				s.p.S(r)
				return o, s.end(cmd, false)
			}
			*dst = addr
		}
	}
	return o, true
}

func valueName(flag byte) string {
	switch flag {
	case 'p':
		return "a path"
	case 'i':
		return "an interface name"
	case 'k':
		return "an RSA public key (PEM, or its base64 body)"
	case 'C':
		return "a cipher (aes256-cbc or chacha20)"
	}
	return "an IPv4 or IPv6 address"
}

// nic finds the interface called name among the machine's, returning the
// machine's own string so that no copy is made.
func (s *Shell) nic(name []byte) (string, bool) {
	for _, n := range s.m.NICs() {
		if equal(name, n) {
			return n, true
		}
	}
	return "", false
}

// Error messages are "cmd: what is wrong", sometimes followed by the usage:
// begin prints the prefix, end the line end and the usage; end returns false
// for the caller to pass on.

func (s *Shell) begin(cmd *command) {
	s.p.S(cmd.name)
	s.p.S(": ")
}

func (s *Shell) beginFlag(cmd *command, flag []byte) {
	s.begin(cmd)
	s.p.B(flag)
	s.p.S(": ")
}

func (s *Shell) end(cmd *command, usage bool) bool {
	s.p.Byte('\n')
	if usage {
		s.p.S(cmd.usage)
		s.p.Byte('\n')
	}
	return false
}

// printProblem prints a Config problem found once the options were combined.
func (s *Shell) printProblem(cmd *command, p problem) bool {
	s.begin(cmd)
	s.p.S(p.field)
	s.p.Byte(' ')
	if p.addr.IsValid() {
		s.p.IP(p.addr)
		s.p.Byte(' ')
	}
	s.p.S(p.reason)
	return s.end(cmd, false)
}

// unknownNIC prints that name is not an interface, and which ones exist.
func (s *Shell) unknownNIC(cmd *command, name []byte) bool {
	s.begin(cmd)
	s.p.S("unknown interface ")
	s.p.Quote(name)
	s.listNICs()
	return s.end(cmd, false)
}

// listNICs prints the machine's interfaces as the tail of a message.
func (s *Shell) listNICs() {
	nics := s.m.NICs()
	if len(nics) == 0 {
		s.p.S("; this machine has no network interface")
		return
	}
	s.p.S("; interfaces:")
	for _, n := range nics {
		s.p.Byte(' ')
		s.p.S(n)
	}
}

func (s *Shell) twice(cmd *command, flag []byte) bool {
	s.beginFlag(cmd, flag)
	s.p.S("given twice")
	return s.end(cmd, false)
}
