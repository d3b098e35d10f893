// Package ddb is the image's serial console shell, modelled on FreeBSD's
// dumpon(8) before a panic and ddb(4) after it.
//
// Before the panic, Run serves the "tamadump> " prompt: dumpon configures the
// netdump client, panic triggers a panic. After the panic, Debug serves the
// "db> " prompt: netdump and dump send memory to netdumpd, bt prints the
// panicking goroutine's stack, reset reboots. Debug never allocates, because
// the Go heap must not be touched once the program has panicked; every buffer
// it uses is made by New.
//
// The shell reaches the machine only through the Machine interface and the
// console only through an io.Reader and an io.Writer, so it runs the same on
// a host as on bare metal.
package ddb

import (
	"net/netip"

	"github.com/tamadump/tamadump/netdump/ekcd"
)

// Config says where netdump sends the dump: the inputs of dumpon(8) and of
// DDB's netdump command. IPv4 or IPv6 (one family for all addresses).
type Config struct {
	NIC     string     // interface name as the image reports it, e.g. "vtnet0"
	Client  netip.Addr // this machine's address on NIC
	Server  netip.Addr // netdumpd's address
	Gateway netip.Addr // next hop towards Server; the zero Addr means Server is on the local link
	Path    string     // directory under netdumpd's dump directory, sent in the HERALD; "" for the server's default
	// Encrypt is dumpon -k's key material, made before any crash; nil
	// sends the dump in clear. ElideEncrypted is -E: zero pages declared
	// (visible to the network) even then.
	Encrypt        *ekcd.Encryptor
	ElideEncrypted bool
}

// MaxPath is the longest Path: netdumpd reads at most 1024 bytes of HERALD
// path, counting the terminating NUL.
const MaxPath = 1023

// NextHop is the address whose MAC the client resolves: the gateway, or the
// server itself when it is on the local link (dumpon's fallback when there
// is no default route).
func (c Config) NextHop() netip.Addr {
	if c.Gateway.IsValid() {
		return c.Gateway
	}
	return c.Server
}

// problem is a Config error kept as parts, so that the debugger can print it
// without allocating.
type problem struct {
	field  string     // "interface", "client", "server", "gateway" or "path"
	addr   netip.Addr // the offending address, when there is one
	reason string
}

func (c *Config) check() (problem, bool) {
	if c.NIC == "" {
		return problem{field: "interface", reason: "is not set"}, true
	}
	for _, f := range [...]struct {
		name string
		addr netip.Addr
	}{{"client", c.Client}, {"server", c.Server}, {"gateway", c.Gateway}} {
		if f.name == "gateway" && !f.addr.IsValid() {
			continue // optional
		}
		if r := addrProblem(f.addr); r != "" {
			return problem{field: f.name, addr: f.addr, reason: r}, true
		}
	}
	if c.Client.Is4() != c.Server.Is4() {
		return problem{field: "server", addr: c.Server, reason: "is not of the client address's family"}, true
	}
	if c.Gateway.IsValid() && c.Gateway.Is4() != c.Client.Is4() {
		return problem{field: "gateway", addr: c.Gateway, reason: "is not of the client address's family"}, true
	}
	if c.Client == c.Server {
		return problem{field: "client", addr: c.Client, reason: "is also the server address"}, true
	}
	if c.Gateway == c.Client {
		return problem{field: "gateway", addr: c.Gateway, reason: "is the client's own address"}, true
	}
	if r := pathProblem(c.Path); r != "" {
		return problem{field: "path", reason: r}, true
	}
	return problem{}, false
}

var broadcast = netip.AddrFrom4([4]byte{255, 255, 255, 255})

// addrProblem says why a cannot be a netdump client, server or gateway, or
// returns "".
func addrProblem(a netip.Addr) string {
	switch {
	case !a.IsValid():
		return "is not set"
	case a.Is4In6():
		return "is an IPv4-mapped IPv6 address; give the IPv4 address"
	case a.IsUnspecified():
		return "is the unspecified address"
	case a.IsMulticast():
		return "is a multicast address"
	case a == broadcast:
		return "is the broadcast address"
	}
	return ""
}

// pathProblem says why p cannot be sent as the HERALD path, or returns "".
// netdumpd refuses absolute paths and ".." components, and truncates at a
// NUL byte.
func pathProblem[T string | []byte](p T) string {
	if len(p) > MaxPath {
		return "is longer than 1023 bytes"
	}
	if len(p) > 0 && p[0] == '/' {
		return "must be relative"
	}
	start := 0
	for i := 0; i <= len(p); i++ {
		if i < len(p) && p[i] == 0 {
			return "must not contain a NUL byte"
		}
		if i == len(p) || p[i] == '/' {
			if i-start == 2 && p[start] == '.' && p[start+1] == '.' {
				return `must not contain ".."`
			}
			start = i + 1
		}
	}
	return ""
}
