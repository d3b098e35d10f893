package ddb

import (
	"bytes"
	"net/netip"
	"strings"
	"testing"
)

func TestParseIPv4(t *testing.T) {
	for in, want := range map[string]string{
		"10.0.2.15":       "10.0.2.15",
		"0.0.0.0":         "0.0.0.0",
		"255.255.255.255": "255.255.255.255",
		"1.2.3.0":         "1.2.3.0",
		"":                "",
		"1.2.3":           "",
		"1.2.3.4.":        "",
		"1.2.3.4.5":       "",
		"1..2.3":          "",
		".1.2.3":          "",
		"256.1.1.1":       "",
		"1.2.3.1000":      "",
		"1234.1.1.1":      "",
		"010.0.0.1":       "", // octal to inet_aton
		"00.0.0.1":        "",
		"1.2.3.4a":        "",
		"+1.2.3.4":        "",
		"0x7f.0.0.1":      "",
		"::1":             "",
	} {
		a, ok := parseIPv4([]byte(in))
		got := ""
		if ok {
			got = a.String()
		}
		if got != want {
			t.Errorf("parseIPv4(%q) = %q, want %q", in, got, want)
		}
	}
}

// TestCheck: the problems the shell prints for a combined configuration.
func TestCheck(t *testing.T) {
	ip := netip.MustParseAddr
	good := configured
	for _, tc := range []struct {
		name string
		edit func(*Config)
		want string
	}{
		{"good", func(*Config) {}, ""},
		{"no gateway", func(c *Config) { c.Gateway = netip.Addr{} }, ""},
		{"no path", func(c *Config) { c.Path = "" }, ""},
		{"path with dots", func(c *Config) { c.Path = "./a/..b/c../.../" }, ""},
		{"longest path", func(c *Config) { c.Path = strings.Repeat("p", MaxPath) }, ""},
		{"no NIC", func(c *Config) { c.NIC = "" }, "ddb: interface is not set"},
		{"no client", func(c *Config) { c.Client = netip.Addr{} }, "ddb: client is not set"},
		{"no server", func(c *Config) { c.Server = netip.Addr{} }, "ddb: server is not set"},
		{"IPv6 server", func(c *Config) { c.Server = ip("fd00::2") }, "ddb: server fd00::2 is not of the client address's family"},
		{"4in6 client", func(c *Config) { c.Client = ip("::ffff:10.0.2.15") }, "ddb: client ::ffff:10.0.2.15 is an IPv4-mapped IPv6 address; give the IPv4 address"},
		{"unspecified", func(c *Config) { c.Client = ip("0.0.0.0") }, "ddb: client 0.0.0.0 is the unspecified address"},
		{"multicast", func(c *Config) { c.Server = ip("239.1.1.1") }, "ddb: server 239.1.1.1 is a multicast address"},
		{"broadcast", func(c *Config) { c.Gateway = ip("255.255.255.255") }, "ddb: gateway 255.255.255.255 is the broadcast address"},
		{"client is server", func(c *Config) { c.Server = c.Client }, "ddb: client 10.0.2.15 is also the server address"},
		{"gateway is client", func(c *Config) { c.Gateway = c.Client }, "ddb: gateway 10.0.2.15 is the client's own address"},
		{"absolute path", func(c *Config) { c.Path = "/var/crash" }, "ddb: path must be relative"},
		{"dot-dot", func(c *Config) { c.Path = "a/../b" }, `ddb: path must not contain ".."`},
		{"trailing dot-dot", func(c *Config) { c.Path = "a/.." }, `ddb: path must not contain ".."`},
		{"only dot-dot", func(c *Config) { c.Path = ".." }, `ddb: path must not contain ".."`},
		{"NUL", func(c *Config) { c.Path = "a\x00b" }, "ddb: path must not contain a NUL byte"},
		{"long path", func(c *Config) { c.Path = strings.Repeat("p", MaxPath+1) }, "ddb: path is longer than 1023 bytes"},
	} {
		c := good
		tc.edit(&c)
		got := ""
		if p, bad := c.check(); bad {
			got = "ddb: " + p.field + " "
			if p.addr.IsValid() {
				got += p.addr.String() + " "
			}
			got += p.reason
		}
		if got != tc.want {
			t.Errorf("%s: check() = %q, want %q", tc.name, got, tc.want)
		}
	}
}

func TestNextHop(t *testing.T) {
	c := configured
	if c.NextHop() != c.Gateway {
		t.Errorf("NextHop %v, want the gateway", c.NextHop())
	}
	c.Gateway = netip.Addr{}
	if c.NextHop() != c.Server {
		t.Errorf("NextHop %v, want the server", c.NextHop())
	}
}

const (
	dumponUsage  = "usage: dumpon -s server -c client [-g gateway] [-p path] [-k pubkey [-C cipher] [-E]] iface | dumpon off\n"
	netdumpUsage = "usage: netdump -s server [-c client] [-g gateway] [-i iface]\n"
)

// exec runs one command line at the pre-panic prompt, or at the debugger's
// if debug is set, and returns what it printed.
func exec(m *fakeMachine, debug bool, line string) string {
	var out bytes.Buffer
	m.console = &out
	s := New(m, strings.NewReader(""), &out)
	argv, _ := split([]byte(line), &s.argv)
	if debug {
		s.db(argv)
	} else {
		s.run(argv, []byte(line))
	}
	s.p.Flush()
	return out.String()
}

type commandCase struct {
	line    string
	nics    []string
	before  *Config // configuration before the command; nil: off
	want    string  // output
	after   *Config // configuration after; nil: off
	dumps   int
	confErr bool // Configure fails
	dumpErr bool // Dump fails
}

func runCommandCases(t *testing.T, debug bool, cases []commandCase) {
	t.Helper()
	for _, tc := range cases {
		m := &fakeMachine{nics: twoNICs}
		if tc.nics != nil {
			m.nics = tc.nics
		}
		if tc.before != nil {
			m.cfg, m.on = *tc.before, true
		}
		if tc.confErr {
			m.configureErr = errNoNIC
		}
		if tc.dumpErr {
			m.dumpErr = errNoAck
		}
		got := lf(t, exec(m, debug, tc.line))
		if got != tc.want {
			t.Errorf("%q:\n got %q\nwant %q", tc.line, got, tc.want)
		}
		var after Config
		if tc.after != nil {
			after = *tc.after
		}
		if m.cfg != after || m.on != (tc.after != nil) {
			t.Errorf("%q: configuration %+v (on %v), want %+v", tc.line, m.cfg, m.on, tc.after)
		}
		if m.dumps != tc.dumps {
			t.Errorf("%q: %d dumps, want %d", tc.line, m.dumps, tc.dumps)
		} else if m.dumps > 0 && m.dumped != after {
			t.Errorf("%q: dumped with %+v, want %+v", tc.line, m.dumped, after)
		}
	}
}

func cfg(nic, client, server, gateway, path string) *Config {
	c := &Config{NIC: nic, Client: netip.MustParseAddr(client), Server: netip.MustParseAddr(server), Path: path}
	if gateway != "" {
		c.Gateway = netip.MustParseAddr(gateway)
	}
	return c
}

func TestDumpon(t *testing.T) {
	longPath := strings.Repeat("d", MaxPath)
	basic := cfg("vtnet0", "10.0.2.15", "10.0.2.2", "", "")
	runCommandCases(t, false, []commandCase{
		// Good.
		{line: "dumpon -s 10.0.2.2 -c 10.0.2.15 vtnet0", want: "dumpon: kernel dumps on vtnet0 to 10.0.2.2\n", after: basic},
		{line: "  dumpon   -s 10.0.2.2  -c 10.0.2.15   vtnet0  ", want: "dumpon: kernel dumps on vtnet0 to 10.0.2.2\n", after: basic},
		{line: "dumpon vtnet0 -c 10.0.2.15 -s 10.0.2.2", want: "dumpon: kernel dumps on vtnet0 to 10.0.2.2\n", after: basic},
		{line: "dumpon -s 192.168.7.1 -c 10.0.2.15 -g 10.0.2.1 -p crash/host1 em0", want: "dumpon: kernel dumps on em0 to 192.168.7.1\n",
			after: cfg("em0", "10.0.2.15", "192.168.7.1", "10.0.2.1", "crash/host1")},
		{line: "dumpon -s 10.0.2.2 -c 10.0.2.15 -p " + longPath + " em0", want: "dumpon: kernel dumps on em0 to 10.0.2.2\n",
			after: cfg("em0", "10.0.2.15", "10.0.2.2", "", longPath)},
		{line: "dumpon -s 10.0.2.2 -c 10.0.2.15 -g 10.0.2.2 em0", want: "dumpon: kernel dumps on em0 to 10.0.2.2\n",
			after: cfg("em0", "10.0.2.15", "10.0.2.2", "10.0.2.2", "")},
		{line: "dumpon off", before: &configured, want: "dumpon: kernel dumps off\n"},
		{line: "dumpon off", want: "dumpon: kernel dumps off\n"},

		// Bad addresses.
		{line: "dumpon -s 1.2.3 -c 10.0.2.15 vtnet0", want: "dumpon: -s: \"1.2.3\" is not an IPv4 or IPv6 address\n"},
		{line: "dumpon -s 10.0.2.2 -c 10.0.2.256 vtnet0", want: "dumpon: -c: \"10.0.2.256\" is not an IPv4 or IPv6 address\n"},
		{line: "dumpon -s 10.0.2.2 -c 10.0.2.15 -g 010.0.2.1 vtnet0", want: "dumpon: -g: \"010.0.2.1\" is not an IPv4 or IPv6 address\n"},
		{line: "dumpon -s netdumpd.example -c 10.0.2.15 vtnet0", want: "dumpon: -s: \"netdumpd.example\" is not an IPv4 or IPv6 address\n"},
		{line: `dumpon -s a"b\c -c 10.0.2.15 vtnet0`, want: `dumpon: -s: "a\"b\\c" is not an IPv4 or IPv6 address` + "\n"},
		{line: "dumpon -s fd00::2 -c 10.0.2.15 vtnet0", want: "dumpon: server fd00::2 is not of the client address's family\n"},
		{line: "dumpon -s 10.0.2.2 -c ::ffff:10.0.2.15 vtnet0", want: "dumpon: -c: \"::ffff:10.0.2.15\" is not a valid IPv6 address (hex groups, at most one \"::\", no zone)\n"},
		{line: "dumpon -s 10.0.2.2 -c 0.0.0.0 vtnet0", want: "dumpon: -c: 0.0.0.0 is the unspecified address\n"},
		{line: "dumpon -s 224.0.0.1 -c 10.0.2.15 vtnet0", want: "dumpon: -s: 224.0.0.1 is a multicast address\n"},
		{line: "dumpon -s 10.0.2.2 -c 10.0.2.15 -g 255.255.255.255 vtnet0", want: "dumpon: -g: 255.255.255.255 is the broadcast address\n"},
		{line: "dumpon -s 10.0.2.15 -c 10.0.2.15 vtnet0", want: "dumpon: client 10.0.2.15 is also the server address\n"},
		{line: "dumpon -s 10.0.2.2 -c 10.0.2.15 -g 10.0.2.15 vtnet0", want: "dumpon: gateway 10.0.2.15 is the client's own address\n"},

		// Bad paths.
		{line: "dumpon -s 10.0.2.2 -c 10.0.2.15 -p /var/crash vtnet0", want: "dumpon: -p: \"/var/crash\" must be relative\n"},
		{line: "dumpon -s 10.0.2.2 -c 10.0.2.15 -p a/../b vtnet0", want: "dumpon: -p: \"a/../b\" must not contain \"..\"\n"},
		{line: "dumpon -s 10.0.2.2 -c 10.0.2.15 -p .. vtnet0", want: "dumpon: -p: \"..\" must not contain \"..\"\n"},
		{line: "dumpon -s 10.0.2.2 -c 10.0.2.15 -p " + longPath + "d vtnet0", want: "dumpon: -p: path is longer than 1023 bytes\n"},

		// Bad syntax.
		{line: "dumpon", want: "dumpon: -s server is required\n" + dumponUsage},
		{line: "dumpon -c 10.0.2.15 vtnet0", want: "dumpon: -s server is required\n" + dumponUsage},
		{line: "dumpon -s 10.0.2.2 vtnet0", want: "dumpon: -c client is required\n" + dumponUsage},
		{line: "dumpon -s 10.0.2.2 -c 10.0.2.15", want: "dumpon: the interface is required; interfaces: vtnet0 em0\n" + dumponUsage},
		{line: "dumpon -s 10.0.2.2 -c 10.0.2.15", nics: []string{}, want: "dumpon: the interface is required; this machine has no network interface\n" + dumponUsage},
		{line: "dumpon -s 10.0.2.2 -c 10.0.2.15 em9", want: "dumpon: unknown interface \"em9\"; interfaces: vtnet0 em0\n"},
		{line: "dumpon -s 10.0.2.2 -c 10.0.2.15 vtnet0 em0", want: "dumpon: unexpected argument \"em0\"\n" + dumponUsage},
		{line: "dumpon -s 10.0.2.2 -c 10.0.2.15 -k key.pem vtnet0", want: "dumpon: -k: the key is neither PEM nor base64: ekcd: no PEM block in the public key\n"},
		{line: "dumpon -s10.0.2.2 -c 10.0.2.15 vtnet0", want: "dumpon: unknown flag \"-s10.0.2.2\"\n" + dumponUsage},
		{line: "dumpon -s 10.0.2.2 -c 10.0.2.15 -i vtnet0", want: "dumpon: unknown flag \"-i\"\n" + dumponUsage},
		{line: "dumpon - vtnet0", want: "dumpon: unknown flag \"-\"\n" + dumponUsage},
		{line: "dumpon vtnet0 -s", want: "dumpon: -s: missing value; expected an IPv4 or IPv6 address\n" + dumponUsage},
		{line: "dumpon vtnet0 -p", want: "dumpon: -p: missing value; expected a path\n" + dumponUsage},
		{line: "dumpon -s 10.0.2.2 -s 10.0.2.3 -c 10.0.2.15 vtnet0", want: "dumpon: -s: given twice\n"},
		{line: "dumpon -p a -p b -s 10.0.2.3 -c 10.0.2.15 vtnet0", want: "dumpon: -p: given twice\n"},
		{line: "dumpon off now", want: "dumpon: unexpected argument \"now\"\n" + dumponUsage},

		// The machine refuses.
		{line: "dumpon -s 10.0.2.2 -c 10.0.2.15 vtnet0", confErr: true, want: "dumpon: interface is down\n"},
		{line: "dumpon off", before: &configured, after: &configured, confErr: true, want: "dumpon: interface is down\n"},
	})
}

func TestPrePanicCommands(t *testing.T) {
	runCommandCases(t, false, []commandCase{
		{line: "show dumpon", want: "netdump: off\n"},
		{line: "show dumpon", before: &configured, after: &configured, want: "netdump: on\n" +
			"  interface em0\n  client    10.0.2.15\n  server    10.0.2.2\n  gateway   10.0.2.1\n  path      crash\n"},
		{line: "show netdump", before: basicConfig(), after: basicConfig(), want: "netdump: on\n" +
			"  interface vtnet0\n  client    10.0.2.15\n  server    10.0.2.2\n" +
			"  gateway   none (server on the local link)\n  path      none (server's default)\n"},
		{line: "show", want: "show: what? try show netdump\n"},
		{line: "show dumpon now", want: "show: unexpected argument \"now\"\n"},
		{line: "show regs", want: "show: unknown object \"regs\"; try show netdump\n"},
		{line: "ifconfig", want: "vtnet0\nem0\n"},
		{line: "ifconfig", nics: []string{}, want: "no network interface\n"},
		{line: "netdump -s 10.0.2.2", want: "netdump: may only be used after a panic; configure with dumpon\n"},
		{line: "dump", want: "dump: may only be used after a panic; configure with dumpon\n"},
		{line: "bt", want: "unknown command \"bt\"; try help\n"},
		{line: "foo", want: "unknown command \"foo\"; try help\n"},
		{line: "Help", want: "unknown command \"Help\"; try help\n"},
		{line: "help", want: helpText},
	})
}

func basicConfig() *Config { return cfg("vtnet0", "10.0.2.15", "10.0.2.2", "", "") }

func TestPanicCommand(t *testing.T) {
	for line, want := range map[string]string{
		"panic":                       DefaultPanic,
		"  panic   ":                  DefaultPanic,
		"panic disk on fire":          "disk on fire",
		" panic   two  spaces  kept ": "two  spaces  kept",
	} {
		m := &fakeMachine{}
		if out := exec(m, false, line); out != "" {
			t.Errorf("%q printed %q", line, out)
		}
		if len(m.panics) != 1 || m.panics[0] != want {
			t.Errorf("%q: panics %q, want [%q]", line, m.panics, want)
		}
	}
}

func TestNetdump(t *testing.T) {
	moved := configured
	moved.Server = netip.MustParseAddr("10.0.9.9")
	runCommandCases(t, true, []commandCase{
		// Everything given; the only NIC is taken.
		{line: "netdump -s 10.0.2.2 -c 10.0.2.15", nics: oneNIC, want: "netdump finished.\n", after: basicConfig(), dumps: 1},
		// Missing values come from the configuration.
		{line: "netdump -s 10.0.9.9", before: &configured, after: &moved, want: "netdump finished.\n", dumps: 1},
		{line: "netdump -s 10.0.2.3 -c 10.0.2.16 -g 10.0.2.254 -i vtnet0", before: &configured,
			after: cfg("vtnet0", "10.0.2.16", "10.0.2.3", "10.0.2.254", "crash"), want: "netdump finished.\n", dumps: 1},
		{line: "netdump -i vtnet0 -s 10.0.2.2 -c 10.0.2.15", after: basicConfig(), want: "netdump finished.\n", dumps: 1},

		// Nothing to infer from.
		{line: "netdump -s 10.0.2.2", want: "netdump: no client address configured; give -c client\n"},
		{line: "netdump -s 10.0.2.2 -c 10.0.2.15", want: "netdump: no interface configured; give -i iface; interfaces: vtnet0 em0\n"},
		{line: "netdump -s 10.0.2.2 -c 10.0.2.15", nics: []string{}, want: "netdump: no interface configured; give -i iface; this machine has no network interface\n"},

		// Errors.
		{line: "netdump", before: &configured, after: &configured, want: "netdump: -s server is required\n" + netdumpUsage},
		{line: "netdump -c 10.0.2.15", want: "netdump: -s server is required\n" + netdumpUsage},
		{line: "netdump -s 10.0.2", want: "netdump: -s: \"10.0.2\" is not an IPv4 or IPv6 address\n"},
		{line: "netdump -s fe80::1 -c 10.0.2.15 -i vtnet0", want: "netdump: server fe80::1 is not of the client address's family\n"},
		{line: "netdump -s 10.0.2.2 -g 0.0.0.0", want: "netdump: -g: 0.0.0.0 is the unspecified address\n"},
		{line: "netdump -s 10.0.2.15", before: &configured, after: &configured, want: "netdump: client 10.0.2.15 is also the server address\n"},
		{line: "netdump -s 10.0.2.2 -i em9", before: &configured, after: &configured, want: "netdump: unknown interface \"em9\"; interfaces: vtnet0 em0\n"},
		{line: "netdump -s 10.0.2.2 -p crash", want: "netdump: unknown flag \"-p\"\n" + netdumpUsage},
		{line: "netdump -s 10.0.2.2 vtnet0", want: "netdump: unexpected argument \"vtnet0\"\n" + netdumpUsage},
		{line: "netdump -s 10.0.2.2 -i", want: "netdump: -i: missing value; expected an interface name\n" + netdumpUsage},
		{line: "netdump -i em0 -i em0 -s 10.0.2.2", want: "netdump: -i: given twice\n"},
		{line: "netdump -s 10.0.2.2 -c 10.0.2.15 -i em0", confErr: true, want: "netdump: interface is down\n"},
		{line: "netdump -s 10.0.2.2", before: &configured, after: &configured, dumpErr: true, dumps: 1,
			want: "Cannot dump: failed to contact netdump server\n"},
	})
	// A configuration the machine reports as off is not inherited.
	m := &fakeMachine{nics: twoNICs, cfg: configured}
	if out := lf(t, exec(m, true, "netdump -s 10.0.2.2")); out != "netdump: no client address configured; give -c client\n" {
		t.Errorf("netdump with netdump off: %q", out)
	}
}

func TestDebuggerCommands(t *testing.T) {
	runCommandCases(t, true, []commandCase{
		{line: "dump", before: &configured, after: &configured, want: "netdump finished.\n", dumps: 1},
		{line: "dump", before: &configured, after: &configured, dumpErr: true, dumps: 1, want: "Cannot dump: failed to contact netdump server\n"},
		{line: "dump", want: "dump: netdump is not configured; use netdump -s server\n"},
		{line: "show netdump", want: "netdump: off\n"},
		{line: "bt", want: string(stack)},
		{line: "trace", want: string(stack)},
		{line: "c", want: "cannot continue after a Go panic; use dump or reset\n"},
		{line: "continue", want: "cannot continue after a Go panic; use dump or reset\n"},
		{line: "dumpon -s 10.0.2.2 -c 10.0.2.15 vtnet0", want: "unknown command \"dumpon\"; try help\n"},
		{line: "panic", want: "unknown command \"panic\"; try help\n"},
		{line: "help", want: dbHelpText},
	})
	m := &fakeMachine{}
	if out := exec(m, true, "reset"); out != "" || m.resets != 1 {
		t.Errorf("reset: printed %q, %d resets", out, m.resets)
	}
}
