package ddb

import (
	"encoding/base64"
	"fmt"
	"net/netip"

	"github.com/tamadump/tamadump/netdump/ekcd"
)

// parseIPv6 parses an IPv6 address in its RFC 4291 text form (hex groups,
// one "::", no zone: the image has one link) without allocating: the
// shell parses after the crash, and netip.ParseAddr allocates its error
// value for a bad address (and string(b) would copy).
func parseIPv6(b []byte) (netip.Addr, bool) {
	var a [16]byte
	groups, gap := 0, -1 // gap: the group index "::" stands at
	i := 0
	if len(b) >= 2 && b[0] == ':' && b[1] == ':' {
		gap, i = 0, 2
		if i == len(b) {
			return netip.AddrFrom16(a), true
		}
	}
	for i < len(b) {
		if groups == 8 {
			return netip.Addr{}, false
		}
		start, v := i, 0
		for i < len(b) && i-start < 4 && hexVal(b[i]) >= 0 {
			v = v<<4 | hexVal(b[i])
			i++
		}
		if i == start {
			return netip.Addr{}, false
		}
		a[2*groups], a[2*groups+1] = byte(v>>8), byte(v)
		groups++
		if i == len(b) {
			break
		}
		if b[i] != ':' || i+1 == len(b) {
			return netip.Addr{}, false
		}
		i++
		if b[i] == ':' {
			if gap >= 0 {
				return netip.Addr{}, false
			}
			gap = groups
			i++
		}
	}
	switch {
	case gap < 0 && groups != 8, gap >= 0 && groups > 7:
		return netip.Addr{}, false
	case gap >= 0:
		n := groups - gap // groups after the gap move to the end
		copy(a[16-2*n:], a[2*gap:2*groups])
		clear(a[2*gap : 16-2*n])
	}
	return netip.AddrFrom16(a), true
}

func hexVal(c byte) int {
	switch {
	case c >= '0' && c <= '9':
		return int(c - '0')
	case c >= 'a' && c <= 'f':
		return int(c-'a') + 10
	case c >= 'A' && c <= 'F':
		return int(c-'A') + 10
	}
	return -1
}

// parseAddr reads an IPv4 or IPv6 address.
func parseAddr(b []byte) (netip.Addr, bool) {
	if a, ok := parseIPv4(b); ok {
		return a, true
	}
	return parseIPv6(b)
}

// NewEncryptor prepares encryption for dumpon -k: key is an RSA public key,
// PEM or its base64 body on one line (what a console line can carry);
// cipher is dumpon's -C (aes256-cbc, the default, or chacha20). It runs
// before any crash and may allocate.
func NewEncryptor(key []byte, cipher string, random interface{ Read([]byte) (int, error) }) (*ekcd.Encryptor, error) {
	alg, err := ekcd.ParseAlgorithm(cipher)
	if err != nil {
		return nil, err
	}
	pub, err := ekcd.ParsePublicKey(key)
	if err != nil {
		der, derr := base64.StdEncoding.DecodeString(string(key))
		if derr != nil {
			return nil, fmt.Errorf("the key is neither PEM nor base64: %v", err)
		}
		if pub, err = ekcd.ParsePublicKeyDER(der); err != nil {
			return nil, err
		}
	}
	return ekcd.NewEncryptor(pub, alg, random)
}
