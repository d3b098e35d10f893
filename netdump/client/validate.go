package client

import (
	"errors"
	"net/netip"
	"strings"

	"github.com/tamadump/tamadump/debugnet"
	"github.com/tamadump/tamadump/netdump/wire"
)

// Errors of Validate. They are made here, before any crash: Retarget runs
// Validate after one, where nothing may allocate, so none of them carries
// the offending value (the caller has it).
var (
	ErrClientMissing     = errors.New("netdump: client address missing")
	ErrServerMissing     = errors.New("netdump: server address missing")
	ErrClientMapped      = errors.New("netdump: client address is an IPv4-mapped IPv6 address: give the IPv4 address")
	ErrServerMapped      = errors.New("netdump: server address is an IPv4-mapped IPv6 address: give the IPv4 address")
	ErrGatewayMapped     = errors.New("netdump: gateway address is an IPv4-mapped IPv6 address: give the IPv4 address")
	ErrFamily            = errors.New("netdump: client, server and gateway must be all IPv4 or all IPv6")
	ErrClientNotUnicast  = errors.New("netdump: client address is not a unicast address")
	ErrServerNotUnicast  = errors.New("netdump: server address is not a unicast address")
	ErrGatewayNotUnicast = errors.New("netdump: gateway address is not a unicast address")
	ErrSameAddress       = errors.New("netdump: client and server addresses are the same")
	ErrPathTooLong       = errors.New("netdump: path longer than 1023 bytes")
	ErrPathNUL           = errors.New("netdump: path contains NUL")
	ErrNegative          = errors.New("netdump: polls, poll delay, retries, arp_retries and windows must not be negative")
	ErrWindowOrder       = errors.New("netdump: maximum window smaller than the window")
	ErrWindowTooLarge    = errors.New("netdump: window larger than 4096 messages")
)

// maxWindow bounds MaxWindow.
const maxWindow = 4096

// Validate checks the configuration and fills in defaults. It does not
// allocate.
func (c *Config) Validate() error {
	if err := checkAddr(c.Client, false, ErrClientMissing, ErrClientMapped, ErrClientNotUnicast); err != nil {
		return err
	}
	if err := checkAddr(c.Server, false, ErrServerMissing, ErrServerMapped, ErrServerNotUnicast); err != nil {
		return err
	}
	if err := checkAddr(c.Gateway, true, nil, ErrGatewayMapped, ErrGatewayNotUnicast); err != nil {
		return err
	}
	// debugnet speaks IPv4 and IPv6, one at a time.
	if c.Client.Is4() != c.Server.Is4() || c.Gateway.IsValid() && c.Gateway.Is4() != c.Client.Is4() {
		return ErrFamily
	}
	if c.Client == c.Server {
		return ErrSameAddress
	}
	if len(c.Path)+1 > wire.MaxHeraldPath {
		return ErrPathTooLong
	}
	if strings.IndexByte(c.Path, 0) >= 0 {
		return ErrPathNUL
	}
	if c.ServerPort == 0 {
		c.ServerPort = wire.ServerPort
	}
	if c.ClientPort == 0 {
		c.ClientPort = wire.ClientPort
	}
	if c.Polls < 0 || c.Retries < 0 || c.ARPRetries < 0 || c.Window < 0 || c.MaxWindow < 0 || c.PollDelay < 0 {
		return ErrNegative
	}
	if c.Polls == 0 {
		c.Polls = debugnet.DefaultPolls
	}
	if c.PollDelay == 0 {
		c.PollDelay = debugnet.DefaultPollDelay
	}
	if c.Retries == 0 {
		c.Retries = debugnet.DefaultRetries
	}
	if c.ARPRetries == 0 {
		c.ARPRetries = debugnet.DefaultARPRetries
	}
	if c.Window == 0 {
		c.Window = DefaultWindow
	}
	if c.MaxWindow == 0 {
		c.MaxWindow = max(DefaultMaxWindow, c.Window)
	}
	if c.MaxWindow < c.Window {
		return ErrWindowOrder
	}
	if c.MaxWindow > maxWindow {
		return ErrWindowTooLarge
	}
	return nil
}

var broadcast = netip.AddrFrom4([4]byte{255, 255, 255, 255})

// checkAddr returns missing, mapped or notUnicast for what is wrong with
// a (a missing optional address is fine).
func checkAddr(a netip.Addr, optional bool, missing, mapped, notUnicast error) error {
	switch {
	case !a.IsValid() && optional:
		return nil
	case !a.IsValid():
		return missing
	case a.Is4In6():
		return mapped
	case a.IsUnspecified() || a.IsMulticast() || a == broadcast:
		return notUnicast
	}
	return nil
}
