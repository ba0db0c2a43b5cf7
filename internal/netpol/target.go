package netpol

import (
	"errors"
	"fmt"
	"net/netip"
	"strings"

	"golang.org/x/net/idna"
)

// Errors returned by the host, authority and target parsers. Each is
// wrapped with the offending input; match with errors.Is.
var (
	// ErrEmptyHost means the host part is missing.
	ErrEmptyHost = errors.New("netpol: empty host")
	// ErrBadHost means the host is not a valid DNS name or IP literal, or
	// uses a spelling that parsers disagree on (percent-encoding, control
	// characters, a numeric last label that is not a valid IPv4 address).
	ErrBadHost = errors.New("netpol: invalid host")
	// ErrUserinfo means the authority carries userinfo ("user@host"), the
	// classic way to make "allowed.example@evil" look like an allowed host.
	ErrUserinfo = errors.New("netpol: userinfo in authority")
	// ErrBadPort means the port is missing where required, not a decimal
	// number, or outside 1–65535.
	ErrBadPort = errors.New("netpol: invalid port")
	// ErrBadTarget means a request target is not an absolute http(s) URI.
	ErrBadTarget = errors.New("netpol: invalid request target")
)

// Host is a parsed destination host: exactly one of Name and Addr is set.
type Host struct {
	// Name is a normalised DNS name: lower-case ASCII (IDNA A-labels), no
	// trailing dot.
	Name string
	// Addr is the address of an IP-literal host, in whatever spelling it
	// was written, unmapped and without zone.
	Addr netip.Addr
}

// IsIP reports whether the host was an IP literal.
func (h Host) IsIP() bool { return h.Addr.IsValid() }

// String returns the canonical form: the name, or the address.
func (h Host) String() string {
	if h.IsIP() {
		return h.Addr.String()
	}
	return h.Name
}

// Target is a parsed absolute-form request target (RFC 9112 §3.2.2).
type Target struct {
	Scheme     string // "http" or "https", lower-case
	Host       Host
	Port       uint16 // explicit, or the scheme's default
	RequestURI string // path and query as sent upstream, "/" when empty
}

// lookupProfile is UTS #46 non-transitional processing as browsers do it,
// with STD3 rules and DNS length limits. CheckHyphens is off because real
// hosts use "--" in the third and fourth positions (e.g. "r3---sn-…").
var lookupProfile = idna.New(
	idna.MapForLookup(),
	idna.BidiRule(),
	idna.Transitional(false),
	idna.CheckHyphens(false),
	idna.CheckJoiners(true),
	idna.VerifyDNSLength(true),
)

// NormalizeHost returns the canonical form of the DNS name s: UTS #46
// mapped (case-folded, full-width and other compatibility forms folded),
// converted to IDNA A-labels, with one trailing dot removed. It rejects IP
// literals, percent-encoding, control characters, and names whose last
// label is numeric (which a URL parser would treat as a malformed IPv4
// address); use ParseHost to accept either a name or an IP literal.
func NormalizeHost(s string) (string, error) {
	h, err := ParseHost(s)
	if err != nil {
		return "", err
	}
	if h.IsIP() {
		return "", fmt.Errorf("%w: %q is an IP literal, not a name", ErrBadHost, s)
	}
	return h.Name, nil
}

// ParseHost parses a bare host (no port): a bracketed or plain IPv6
// literal, an IPv4 literal in any inet_aton spelling, or a DNS name, which
// it normalises as NormalizeHost does. A name that maps to an IP literal
// under IDNA (full-width digits, ideographic full stops) is returned as
// that IP, because that is what a browser or curl would connect to.
func ParseHost(s string) (Host, error) {
	if s == "" {
		return Host{}, ErrEmptyHost
	}
	if err := checkHostBytes(s); err != nil {
		return Host{}, err
	}
	if s[0] == '[' {
		a, err := ParseIPLiteral(s)
		if err != nil {
			return Host{}, fmt.Errorf("%w: %w", ErrBadHost, err)
		}
		return Host{Addr: a}, nil
	}
	if strings.IndexByte(s, '%') >= 0 && strings.IndexByte(s, ':') < 0 {
		return Host{}, fmt.Errorf("%w: percent-encoded host %q", ErrBadHost, s)
	}
	if strings.IndexByte(s, ':') >= 0 {
		// Only an IPv6 literal may contain a colon.
		a, err := ParseIPLiteral(s)
		if err != nil {
			return Host{}, fmt.Errorf("%w: %w", ErrBadHost, err)
		}
		return Host{Addr: a}, nil
	}
	ascii := strings.TrimSuffix(s, ".")
	if ascii == "" {
		return Host{}, fmt.Errorf("%w: %q", ErrEmptyHost, s)
	}
	if a, err := ParseIPLiteral(ascii); err == nil {
		return Host{Addr: a}, nil
	}
	name, err := lookupProfile.ToASCII(lowerASCII(s))
	if err != nil {
		return Host{}, fmt.Errorf("%w: %q: %w", ErrBadHost, s, err)
	}
	// Mapping can produce the trailing dot (U+3002 "。" → "."), so strip
	// after it, once.
	name = strings.TrimSuffix(name, ".")
	if strings.HasSuffix(name, ".") {
		return Host{}, fmt.Errorf("%w: %q has an empty last label", ErrBadHost, s)
	}
	if name == "" {
		return Host{}, fmt.Errorf("%w: %q", ErrEmptyHost, s)
	}
	if a, err := ParseIPLiteral(name); err == nil {
		return Host{Addr: a}, nil
	}
	if endsInNumber(name) {
		return Host{}, fmt.Errorf("%w: %q ends in a number but is not a valid IPv4 address", ErrBadHost, s)
	}
	// ToASCII leaves labels it could not process; a second pass must be a
	// fixed point or the name is not in canonical form.
	if again, err := lookupProfile.ToASCII(name); err != nil || again != name {
		return Host{}, fmt.Errorf("%w: %q does not normalise stably", ErrBadHost, s)
	}
	return Host{Name: name}, nil
}

// checkHostBytes rejects bytes no valid host contains and that parsers
// disagree on: controls, space, DEL, and URI delimiters.
func checkHostBytes(s string) error {
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c < 0x20 || c == 0x7f || c == ' ':
			return fmt.Errorf("%w: control or space character in %q", ErrBadHost, s)
		case c == '@':
			return fmt.Errorf("%w: %q", ErrUserinfo, s)
		case c == '/' || c == '\\' || c == '?' || c == '#':
			return fmt.Errorf("%w: delimiter %q in %q", ErrBadHost, c, s)
		}
	}
	return nil
}

func lowerASCII(s string) string {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c >= 'A' && c <= 'Z' {
			b := []byte(s)
			for j := i; j < len(b); j++ {
				if b[j] >= 'A' && b[j] <= 'Z' {
					b[j] += 'a' - 'A'
				}
			}
			return string(b)
		}
	}
	return s
}

// endsInNumber reports whether the last label is all decimal digits or a
// 0x-prefixed hex number: WHATWG URL parsers then insist on an IPv4 parse,
// and so do we, so "1.2.3.4.5" or "example.0x10" are errors, not names.
func endsInNumber(name string) bool {
	last := name[strings.LastIndexByte(name, '.')+1:]
	if last == "" {
		return false
	}
	if len(last) >= 2 && last[0] == '0' && (last[1] == 'x' || last[1] == 'X') {
		for i := 2; i < len(last); i++ {
			if !isHex(last[i]) {
				return false
			}
		}
		return true
	}
	for i := 0; i < len(last); i++ {
		if last[i] < '0' || last[i] > '9' {
			return false
		}
	}
	return true
}

func isHex(c byte) bool {
	return c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F'
}

// ParseAuthority parses a CONNECT request target (RFC 9110 §9.3.6):
// "host:port" or "[ipv6]:port". The port is required. Userinfo, empty
// hosts, unbracketed IPv6 and anything ParseHost rejects are errors.
func ParseAuthority(s string) (Host, uint16, error) {
	if s == "" {
		return Host{}, 0, ErrEmptyHost
	}
	if strings.IndexByte(s, '@') >= 0 {
		return Host{}, 0, fmt.Errorf("%w: %q", ErrUserinfo, s)
	}
	hostPart, portPart, err := splitHostPort(s)
	if err != nil {
		return Host{}, 0, err
	}
	if portPart == "" {
		return Host{}, 0, fmt.Errorf("%w: missing port in %q", ErrBadPort, s)
	}
	port, err := parsePort(portPart)
	if err != nil {
		return Host{}, 0, err
	}
	h, err := ParseHost(hostPart)
	if err != nil {
		return Host{}, 0, err
	}
	return h, port, nil
}

// splitHostPort splits "host[:port]" and "[v6][:port]"; port is "" when
// absent. A host containing a colon must be bracketed.
func splitHostPort(s string) (host, port string, err error) {
	if s[0] == '[' {
		end := strings.IndexByte(s, ']')
		if end < 0 {
			return "", "", fmt.Errorf("%w: missing ']' in %q", ErrBadHost, s)
		}
		host, rest := s[:end+1], s[end+1:]
		if rest == "" {
			return host, "", nil
		}
		if rest[0] != ':' {
			return "", "", fmt.Errorf("%w: junk after ']' in %q", ErrBadHost, s)
		}
		if rest == ":" {
			return "", "", fmt.Errorf("%w: empty port in %q", ErrBadPort, s)
		}
		return host, rest[1:], nil
	}
	i := strings.LastIndexByte(s, ':')
	if i < 0 {
		return s, "", nil
	}
	host, port = s[:i], s[i+1:]
	if strings.IndexByte(host, ':') >= 0 {
		return "", "", fmt.Errorf("%w: IPv6 host must be bracketed in %q", ErrBadHost, s)
	}
	if port == "" {
		return "", "", fmt.Errorf("%w: empty port in %q", ErrBadPort, s)
	}
	if host == "" {
		return "", "", fmt.Errorf("%w: %q", ErrEmptyHost, s)
	}
	return host, port, nil
}

func parsePort(s string) (uint16, error) {
	if s == "" || len(s) > 5 {
		return 0, fmt.Errorf("%w: %q", ErrBadPort, s)
	}
	var v uint32
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < '0' || c > '9' {
			return 0, fmt.Errorf("%w: %q", ErrBadPort, s)
		}
		v = v*10 + uint32(c-'0')
	}
	if v == 0 || v > 65535 {
		return 0, fmt.Errorf("%w: %q out of range", ErrBadPort, s)
	}
	return uint16(v), nil
}

// ParseTarget parses an absolute-form request target as a forward proxy
// receives it: "http://host[:port][/path][?query]" (https is accepted too;
// the proxy decides whether to serve it). Userinfo, backslashes (which
// WHATWG parsers read as '/', so "http://a.com\@evil" splits differently in
// different parsers), fragments, control characters and anything
// ParseHost or the port parser rejects are errors.
func ParseTarget(s string) (Target, error) {
	scheme, rest, ok := strings.Cut(s, "://")
	if !ok {
		return Target{}, fmt.Errorf("%w: not an absolute URI: %q", ErrBadTarget, s)
	}
	var defPort uint16
	switch strings.ToLower(scheme) {
	case "http":
		defPort = 80
	case "https":
		defPort = 443
	default:
		return Target{}, fmt.Errorf("%w: scheme %q", ErrBadTarget, scheme)
	}
	for i := 0; i < len(rest); i++ {
		c := rest[i]
		if c <= ' ' || c == 0x7f || c == '\\' || c == '#' {
			return Target{}, fmt.Errorf("%w: byte %q in %q", ErrBadTarget, c, s)
		}
	}
	end := strings.IndexAny(rest, "/?")
	if end < 0 {
		end = len(rest)
	}
	authority, uri := rest[:end], rest[end:]
	if strings.IndexByte(authority, '@') >= 0 {
		return Target{}, fmt.Errorf("%w: %q", ErrUserinfo, s)
	}
	if authority == "" {
		return Target{}, fmt.Errorf("%w: %q", ErrEmptyHost, s)
	}
	hostPart, portPart, err := splitHostPort(authority)
	if err != nil {
		return Target{}, err
	}
	port := defPort
	if portPart != "" {
		if port, err = parsePort(portPart); err != nil {
			return Target{}, err
		}
	}
	h, err := ParseHost(hostPart)
	if err != nil {
		return Target{}, err
	}
	switch {
	case uri == "":
		uri = "/"
	case uri[0] == '?':
		uri = "/" + uri
	}
	return Target{Scheme: strings.ToLower(scheme), Host: h, Port: port, RequestURI: uri}, nil
}
