package netpol

import (
	"errors"
	"fmt"
	"net/netip"
	"strings"
)

// ErrNotIP is returned by ParseIPLiteral when the input is not an IP
// address in any spelling a resolver library would accept.
var ErrNotIP = errors.New("netpol: not an IP literal")

// ParseIPLiteral parses s as an IP address in every spelling that libc's
// inet_aton, curl or a browser would turn into an address, so that a policy
// check sees the same address the connection would reach:
//
//   - IPv4 in one to four dot-separated parts, each decimal, octal (leading
//     0) or hex (leading 0x): "127.0.0.1", "2130706433", "0x7f000001",
//     "0177.0.0.1", "127.1", "0x7f.1";
//   - IPv6, optionally in brackets, with an optional zone id ("fe80::1%eth0",
//     "[fe80::1%25eth0]"). The zone is discarded: it selects an interface,
//     not an address, and the ranges it could matter for are blocked anyway;
//   - IPv4-mapped IPv6 ("::ffff:127.0.0.1", "::ffff:7f00:1"), which is
//     returned unmapped as the IPv4 address it reaches.
//
// It does not accept a trailing dot, surrounding spaces or anything else;
// callers normalise host names first (see ParseHost).
func ParseIPLiteral(s string) (netip.Addr, error) {
	if s == "" {
		return netip.Addr{}, ErrNotIP
	}
	bracketed := false
	if s[0] == '[' {
		if len(s) < 2 || s[len(s)-1] != ']' {
			return netip.Addr{}, fmt.Errorf("%w: unbalanced brackets in %q", ErrNotIP, s)
		}
		s = s[1 : len(s)-1]
		bracketed = true
	}
	if strings.IndexByte(s, ':') >= 0 {
		return parseIPv6(s)
	}
	if bracketed {
		// Brackets are IPv6-only in URIs (RFC 3986 §3.2.2).
		return netip.Addr{}, fmt.Errorf("%w: brackets around a non-IPv6 host %q", ErrNotIP, s)
	}
	return parseInetAton(s)
}

func parseIPv6(s string) (netip.Addr, error) {
	// netip accepts any non-empty zone; the zone is dropped, and hosts
	// with control characters are refused before they get here.
	a, err := netip.ParseAddr(s)
	if err != nil || !a.Is6() {
		return netip.Addr{}, fmt.Errorf("%w: %q", ErrNotIP, s)
	}
	return a.WithZone("").Unmap(), nil
}

// parseInetAton implements the classic BSD inet_aton grammar (also the
// WHATWG URL IPv4 parser): 1–4 parts; the last part fills all remaining
// bytes.
func parseInetAton(s string) (netip.Addr, error) {
	var parts [4]uint64
	n := 0
	for part := range strings.SplitSeq(s, ".") {
		if n == 4 {
			return netip.Addr{}, fmt.Errorf("%w: more than four parts in %q", ErrNotIP, s)
		}
		v, ok := parseAtonPart(part)
		if !ok {
			return netip.Addr{}, fmt.Errorf("%w: %q", ErrNotIP, s)
		}
		parts[n] = v
		n++
	}
	// Every part but the last is one byte; the last fills what is left.
	for i := 0; i < n-1; i++ {
		if parts[i] > 0xff {
			return netip.Addr{}, fmt.Errorf("%w: part %d of %q exceeds 255", ErrNotIP, i+1, s)
		}
	}
	lastBits := uint(8 * (5 - n))
	if parts[n-1] >= 1<<lastBits {
		return netip.Addr{}, fmt.Errorf("%w: last part of %q is too large", ErrNotIP, s)
	}
	v := parts[n-1]
	for i := 0; i < n-1; i++ {
		v |= parts[i] << uint(24-8*i)
	}
	return netip.AddrFrom4([4]byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)}), nil
}

// parseAtonPart parses one inet_aton part. "0x" alone is zero, as in glibc
// and WHATWG; values above 2^32 are rejected rather than wrapped.
func parseAtonPart(p string) (uint64, bool) {
	if p == "" {
		return 0, false
	}
	base := uint64(10)
	switch {
	case len(p) >= 2 && p[0] == '0' && (p[1] == 'x' || p[1] == 'X'):
		base, p = 16, p[2:]
	case len(p) >= 2 && p[0] == '0':
		base, p = 8, p[1:]
	}
	var v uint64
	for i := 0; i < len(p); i++ {
		c := p[i]
		var d uint64
		switch {
		case c >= '0' && c <= '9':
			d = uint64(c - '0')
		case base == 16 && c >= 'a' && c <= 'f':
			d = uint64(c-'a') + 10
		case base == 16 && c >= 'A' && c <= 'F':
			d = uint64(c-'A') + 10
		default:
			return 0, false
		}
		if d >= base {
			return 0, false
		}
		v = v*base + d
		if v > 0xffffffff {
			return 0, false
		}
	}
	return v, true
}

// Class is the special-purpose range an address belongs to.
type Class struct {
	// Reason is the shared reason code a connection to the range is denied
	// with, or "" for an ordinary public address.
	Reason string
	// Range is the special range itself, in the address's own family. A
	// rule lifts the block only with a CIDR inside (or equal to) Range.
	Range netip.Prefix
}

type specialRange struct {
	prefix netip.Prefix
	reason string
}

func mustRanges(pairs ...string) []specialRange {
	out := make([]specialRange, 0, len(pairs)/2)
	for i := 0; i < len(pairs); i += 2 {
		out = append(out, specialRange{prefix: netip.MustParsePrefix(pairs[i]), reason: pairs[i+1]})
	}
	return out
}

// ipv4Special is searched in order; the first containing range wins, so
// more specific ranges (metadata) come before the ranges holding them.
var ipv4Special = mustRanges(
	"169.254.169.254/32", ReasonMetadataAddress, // AWS, GCP, Azure, OpenStack, DigitalOcean …
	"100.100.100.200/32", ReasonMetadataAddress, // Alibaba Cloud (inside CGNAT, but name it for what it is)
	"0.0.0.0/8", ReasonUnspecifiedAddress, // "this network"; Linux routes 0.0.0.0 to the local host
	"127.0.0.0/8", ReasonLoopbackAddress,
	"169.254.0.0/16", ReasonLinkLocalAddress,
	"224.0.0.0/4", ReasonMulticastAddress,
	"10.0.0.0/8", ReasonPrivateAddress,
	"172.16.0.0/12", ReasonPrivateAddress,
	"192.168.0.0/16", ReasonPrivateAddress,
	"100.64.0.0/10", ReasonPrivateAddress, // CGNAT (RFC 6598): provider-internal
	"192.0.0.0/24", ReasonReservedAddress, // IETF protocol assignments
	"192.0.2.0/24", ReasonReservedAddress, // TEST-NET-1
	"198.51.100.0/24", ReasonReservedAddress, // TEST-NET-2
	"203.0.113.0/24", ReasonReservedAddress, // TEST-NET-3
	"192.88.99.0/24", ReasonReservedAddress, // deprecated 6to4 relay anycast
	"198.18.0.0/15", ReasonReservedAddress, // benchmarking
	"240.0.0.0/4", ReasonReservedAddress, // reserved, includes 255.255.255.255 broadcast
)

// ipv6Special is searched in order after the embedded-IPv4 forms are
// handled. Anything outside 2000::/3 (the only block IANA allocates for
// global unicast) falls into the final catch-all ranges.
var ipv6Special = mustRanges(
	"::/128", ReasonUnspecifiedAddress,
	"::1/128", ReasonLoopbackAddress,
	"fd00:ec2::254/128", ReasonMetadataAddress, // AWS IMDS over IPv6
	"fe80::/10", ReasonLinkLocalAddress,
	"ff00::/8", ReasonMulticastAddress,
	"fc00::/7", ReasonPrivateAddress, // unique local (ULA)
	"fec0::/10", ReasonPrivateAddress, // deprecated site-local, the old private range
	"64:ff9b:1::/48", ReasonReservedAddress, // local-use NAT64 (RFC 8215): translator-specific
	"100::/64", ReasonReservedAddress, // discard-only
	"2001::/23", ReasonReservedAddress, // IETF protocol assignments, includes Teredo 2001::/32
	"2001:db8::/32", ReasonReservedAddress, // documentation
	"3fff::/20", ReasonReservedAddress, // documentation (RFC 9637)
	"::/3", ReasonReservedAddress, // not global unicast, includes IPv4-compatible ::/96
	"4000::/2", ReasonReservedAddress,
	"8000::/1", ReasonReservedAddress,
)

var (
	nat64Prefix = netip.MustParsePrefix("64:ff9b::/96")
	sixToFour   = netip.MustParsePrefix("2002::/16")
)

// Classify reports which special-purpose range addr falls in. Addresses
// that embed an IPv4 address the network will translate to — NAT64
// 64:ff9b::/96 (RFC 6052) and 6to4 2002::/16 (RFC 3056) — are classified by
// the embedded IPv4 address, because a translator or 6to4 relay would
// deliver the packet there; their Range is the IPv4 range re-embedded in
// the same IPv6 prefix. IPv4-mapped addresses are classified as the IPv4
// address they map. Zones are ignored.
func Classify(addr netip.Addr) Class {
	addr = addr.WithZone("").Unmap()
	if addr.Is4() {
		return classify4(addr)
	}
	if !addr.Is6() {
		return Class{Reason: ReasonUnspecifiedAddress}
	}
	b := addr.As16()
	switch {
	case nat64Prefix.Contains(addr):
		v4 := netip.AddrFrom4([4]byte(b[12:16]))
		return embed(classify4(v4), b, 96)
	case sixToFour.Contains(addr):
		v4 := netip.AddrFrom4([4]byte(b[2:6]))
		return embed(classify4(v4), b, 16)
	}
	for _, r := range ipv6Special {
		if r.prefix.Contains(addr) {
			return Class{Reason: r.reason, Range: r.prefix}
		}
	}
	return Class{}
}

func classify4(addr netip.Addr) Class {
	for _, r := range ipv4Special {
		if r.prefix.Contains(addr) {
			return Class{Reason: r.reason, Range: r.prefix}
		}
	}
	return Class{}
}

// embed re-expresses an IPv4 special range as the IPv6 range that embeds it
// at bit offset off of the address template b.
func embed(c Class, b [16]byte, off int) Class {
	if c.Reason == "" {
		return Class{}
	}
	v4 := c.Range.Addr().As4()
	copy(b[off/8:off/8+4], v4[:])
	bits := off + c.Range.Bits()
	p, err := netip.AddrFrom16(b).Prefix(bits)
	if err != nil {
		return Class{Reason: c.Reason, Range: netip.PrefixFrom(netip.AddrFrom16(b), 128)}
	}
	return Class{Reason: c.Reason, Range: p}
}
