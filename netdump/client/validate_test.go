package client

import (
	"errors"
	"net/netip"
	"strings"
	"testing"

	"github.com/tamadump/tamadump/netdump/dumptest"
)

func TestConfigErrors(t *testing.T) {
	good := Config{Client: clientAddr, Server: serverPrefix.Addr()}
	for _, tc := range []struct {
		mod  func(*Config)
		want error
	}{
		{func(c *Config) { c.Client = netipZero() }, ErrClientMissing},
		{func(c *Config) { c.Server = netipZero() }, ErrServerMissing},
		{func(c *Config) { c.Client = netipMust("fe80::1") }, ErrFamily},
		{func(c *Config) { c.Server = netipMust("::1") }, ErrFamily},
		{func(c *Config) { c.Gateway = netipMust("::1") }, ErrFamily},
		{func(c *Config) { c.Client = netipMust("::ffff:127.0.9.2") }, ErrClientMapped},
		{func(c *Config) { c.Client, c.Server = netipMust("fd00::2"), netipMust("ff02::1") }, ErrServerNotUnicast},
		{func(c *Config) { c.Client = netipMust("224.0.0.1") }, ErrClientNotUnicast},
		{func(c *Config) { c.Server = netipMust("255.255.255.255") }, ErrServerNotUnicast},
		{func(c *Config) { c.Gateway = netipMust("0.0.0.0") }, ErrGatewayNotUnicast},
		{func(c *Config) { c.Server = c.Client }, ErrSameAddress},
		{func(c *Config) { c.Path = strings.Repeat("a", 1024) }, ErrPathTooLong},
		{func(c *Config) { c.Path = "a\x00b" }, ErrPathNUL},
		{func(c *Config) { c.Retries = -1 }, ErrNegative},
		{func(c *Config) { c.Window, c.MaxWindow = 64, 8 }, ErrWindowOrder},
		{func(c *Config) { c.MaxWindow = 4097 }, ErrWindowTooLarge},
	} {
		c := good
		tc.mod(&c)
		if err := c.Validate(); !errors.Is(err, tc.want) {
			t.Errorf("Validate: %v, want %v", err, tc.want)
		}
	}
	longest := good
	longest.Path = strings.Repeat("a", 1023)
	if err := longest.Validate(); err != nil {
		t.Errorf("a 1023-byte path: %v", err)
	}
	if err := good.Validate(); err != nil || good.ServerPort != 20023 || good.Window != 64 {
		t.Errorf("defaults: %v %+v", err, good)
	}
	v6 := Config{Client: netipMust("fd00:25::2"), Server: netipMust("fd00:25::1"), Gateway: netipMust("fe80::1")}
	if err := v6.Validate(); err != nil {
		t.Errorf("IPv6: %v", err)
	}
}

// Retarget runs after the crash: neither a good target nor a bad one
// allocates. The negative control shows the measurement sees the kind of
// error Validate used to build.
func TestRetargetDoesNotAllocate(t *testing.T) {
	link, _ := dumptest.NewResponder(1500)
	c, err := New(link, responderConfig())
	if err != nil {
		t.Fatal(err)
	}
	gw := netipMust("127.0.9.254")
	for _, tc := range []struct {
		client, server, gateway netip.Addr
		path                    string
		want                    error
	}{
		{clientAddr, serverPrefix.Addr(), gw, "crashes/here", nil},
		{clientAddr, netipMust("::1"), gw, "", ErrFamily},
		{clientAddr, clientAddr, netipZero(), "", ErrSameAddress},
		{clientAddr, serverPrefix.Addr(), netipZero(), "a\x00", ErrPathNUL},
		{netipMust("224.0.0.2"), serverPrefix.Addr(), netipZero(), "", ErrClientNotUnicast},
	} {
		var err error
		if n := testing.AllocsPerRun(50, func() { err = c.Retarget(tc.client, tc.server, tc.gateway, tc.path) }); n != 0 {
			t.Errorf("Retarget(%v, %v, %v, %q) allocated %v times", tc.client, tc.server, tc.gateway, tc.path, n)
		}
		if !errors.Is(err, tc.want) {
			t.Errorf("Retarget(%v, %v, %v, %q): %v, want %v", tc.client, tc.server, tc.gateway, tc.path, err, tc.want)
		}
	}
	if got := c.Config(); got.Server != serverPrefix.Addr() || got.Path != "crashes/here" || got.Gateway != gw {
		t.Errorf("config after retargeting: %+v", got)
	}
	var sink error
	if n := testing.AllocsPerRun(50, func() { sink = errors.New("netdump: server " + tc0(c) + " is not IPv4") }); n == 0 {
		t.Errorf("an error built at run time did not allocate: the measurement is blind (%v)", sink)
	}
}

// tc0 is a run-time string, so the negative control's error is built then.
func tc0(c *Client) string { return c.Config().Server.String() }
