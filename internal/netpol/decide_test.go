package netpol

import (
	"context"
	"errors"
	"net/netip"
	"sync"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// stubResolver answers from a fixed table and records every lookup, so
// tests can prove IP literals are never resolved. It never touches the
// network.
type stubResolver struct {
	mu      sync.Mutex
	answers map[string][]string // absolute name → addresses
	calls   []string
	quiet   bool // do not record calls (benchmarks)
}

var errNXDomain = errors.New("no such host")

func (s *stubResolver) LookupNetIP(_ context.Context, network, host string) ([]netip.Addr, error) {
	if !s.quiet {
		s.mu.Lock()
		s.calls = append(s.calls, network+" "+host)
		s.mu.Unlock()
	}
	ans, ok := s.answers[host]
	if !ok {
		return nil, errNXDomain
	}
	out := make([]netip.Addr, 0, len(ans))
	for _, a := range ans {
		out = append(out, netip.MustParseAddr(a))
	}
	return out, nil
}

func (s *stubResolver) takeCalls() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	c := s.calls
	s.calls = nil
	return c
}

func newStub() *stubResolver {
	return &stubResolver{answers: map[string][]string{
		"pypi.org.":                   {"151.101.0.223"},
		"files.pythonhosted.org.":     {"151.101.1.63", "2a04:4e42::319"},
		"a.b.files.pythonhosted.org.": {"151.101.1.64"},
		"pythonhosted.org.":           {"151.101.1.65"},
		"evilpythonhosted.org.":       {"151.101.1.66"},
		"rebind.pythonhosted.org.":    {"127.0.0.1"},
		"meta.pythonhosted.org.":      {"169.254.169.254"},
		"meta6.pythonhosted.org.":     {"fd00:ec2::254"},
		"mixed.pythonhosted.org.":     {"151.101.1.1", "10.0.0.5"},
		"mapped.pythonhosted.org.":    {"::ffff:192.168.1.1"},
		"nat64.pythonhosted.org.":     {"64:ff9b::a9fe:a9fe"},
		"ula.pythonhosted.org.":       {"fd12::1"},
		"cgnat.pythonhosted.org.":     {"100.64.0.1"},
		"zero.pythonhosted.org.":      {"0.0.0.0"},
		"empty.pythonhosted.org.":     {},
		"dup.pythonhosted.org.":       {"151.101.1.1", "151.101.1.1", "::ffff:151.101.1.1"},
		"localhost.":                  {"127.0.0.1", "::1"},
		"github.com.":                 {"140.82.112.3"},
		"api.github.com.":             {"140.82.112.6"},
		"gist.github.com.":            {"140.82.112.4"},
		"xn--bcher-kva.example.":      {"93.184.215.14"},
		"docs.example.org.":           {"93.184.215.15"},
		"api.example.net.":            {"93.184.215.16"},
		"api2.example.net.":           {"93.184.215.17"},
		"lab.internal.":               {"10.1.2.3"},
		"metadata.google.internal.":   {"169.254.169.254"},
	}}
}

func loadTestPolicy(t testing.TB) *Policy {
	t.Helper()
	p, err := LoadFile("testdata/policy.yaml")
	if err != nil {
		t.Fatalf("LoadFile: %v", err)
	}
	return p
}

var addrCmp = cmp.Comparer(func(a, b netip.Addr) bool { return a == b })

func addrs(ss ...string) []netip.Addr {
	if len(ss) == 0 {
		return nil
	}
	out := make([]netip.Addr, len(ss))
	for i, s := range ss {
		out[i] = netip.MustParseAddr(s)
	}
	return out
}

func addr(s string) netip.Addr {
	if s == "" {
		return netip.Addr{}
	}
	return netip.MustParseAddr(s)
}

type destCase struct {
	name    string
	host    string
	port    uint16
	method  string
	scheme  string
	verdict Verdict
	reason  string
	rule    string
	want    string   // Decision.Host
	addrs   []string // Decision.Addrs
	denied  string   // Decision.DeniedAddr
}

// literal denies a literal host whose single address is blocked.
func literal(name, host, reason, canon string) destCase {
	return destCase{name: name, host: host, port: 443, verdict: Deny, reason: reason, want: canon, addrs: []string{canon}, denied: canon}
}

// destCases is the destination table: tricky spellings, special ranges,
// DNS answers that point inside, and rule semantics.
var destCases = []destCase{
	// Loopback in every spelling.
	literal("dotted", "127.0.0.1", ReasonLoopbackAddress, "127.0.0.1"),
	literal("short two parts", "127.1", ReasonLoopbackAddress, "127.0.0.1"),
	literal("hex short", "0x7f.1", ReasonLoopbackAddress, "127.0.0.1"),
	literal("hex whole", "0x7f000001", ReasonLoopbackAddress, "127.0.0.1"),
	literal("hex upper", "0X7F000001", ReasonLoopbackAddress, "127.0.0.1"),
	literal("decimal whole", "2130706433", ReasonLoopbackAddress, "127.0.0.1"),
	literal("octal first part", "0177.0.0.1", ReasonLoopbackAddress, "127.0.0.1"),
	literal("octal whole", "017700000001", ReasonLoopbackAddress, "127.0.0.1"),
	literal("zero-padded octal parts", "0177.000.000.001", ReasonLoopbackAddress, "127.0.0.1"),
	literal("mixed hex octal decimal", "0x7f.0.00.1", ReasonLoopbackAddress, "127.0.0.1"),
	literal("three parts", "127.0.1", ReasonLoopbackAddress, "127.0.0.1"),
	literal("trailing dot", "127.0.0.1.", ReasonLoopbackAddress, "127.0.0.1"),
	literal("top of loopback", "127.255.255.254", ReasonLoopbackAddress, "127.255.255.254"),
	literal("full-width digits", "１２７.０.０.１", ReasonLoopbackAddress, "127.0.0.1"),
	literal("ideographic full stops", "127。0。0。1", ReasonLoopbackAddress, "127.0.0.1"),
	literal("v4-mapped bracketed", "[::ffff:127.0.0.1]", ReasonLoopbackAddress, "127.0.0.1"),
	literal("v4-mapped hex", "::ffff:7f00:1", ReasonLoopbackAddress, "127.0.0.1"),
	literal("v4-mapped long form", "[0:0:0:0:0:ffff:7f00:1]", ReasonLoopbackAddress, "127.0.0.1"),
	literal("v6 loopback", "[::1]", ReasonLoopbackAddress, "::1"),
	literal("v6 loopback long", "0:0:0:0:0:0:0:1", ReasonLoopbackAddress, "::1"),
	literal("nat64 loopback", "[64:ff9b::7f00:1]", ReasonLoopbackAddress, "64:ff9b::7f00:1"),

	// Unspecified.
	literal("zero", "0.0.0.0", ReasonUnspecifiedAddress, "0.0.0.0"),
	literal("zero single part", "0", ReasonUnspecifiedAddress, "0.0.0.0"),
	literal("this network", "0.1.2.3", ReasonUnspecifiedAddress, "0.1.2.3"),
	literal("v6 unspecified", "[::]", ReasonUnspecifiedAddress, "::"),

	// Cloud metadata.
	literal("metadata", "169.254.169.254", ReasonMetadataAddress, "169.254.169.254"),
	literal("metadata hex", "0xa9fea9fe", ReasonMetadataAddress, "169.254.169.254"),
	literal("metadata decimal", "2852039166", ReasonMetadataAddress, "169.254.169.254"),
	literal("metadata three parts", "169.254.43518", ReasonMetadataAddress, "169.254.169.254"),
	literal("metadata octal", "0251.0376.0251.0376", ReasonMetadataAddress, "169.254.169.254"),
	literal("metadata v6", "[fd00:ec2::254]", ReasonMetadataAddress, "fd00:ec2::254"),
	literal("metadata v4-mapped", "[::ffff:169.254.169.254]", ReasonMetadataAddress, "169.254.169.254"),
	literal("metadata nat64", "[64:ff9b::a9fe:a9fe]", ReasonMetadataAddress, "64:ff9b::a9fe:a9fe"),
	literal("metadata 6to4", "[2002:a9fe:a9fe::1]", ReasonMetadataAddress, "2002:a9fe:a9fe::1"),
	literal("alibaba metadata", "100.100.100.200", ReasonMetadataAddress, "100.100.100.200"),

	// Link-local, with zones.
	literal("link-local v4", "169.254.1.1", ReasonLinkLocalAddress, "169.254.1.1"),
	literal("link-local zone uri form", "[fe80::1%25eth0]", ReasonLinkLocalAddress, "fe80::1"),
	literal("link-local zone bare", "fe80::1%eth0", ReasonLinkLocalAddress, "fe80::1"),

	// Private ranges.
	literal("rfc1918 10", "10.0.0.1", ReasonPrivateAddress, "10.0.0.1"),
	literal("rfc1918 172.16", "172.16.0.1", ReasonPrivateAddress, "172.16.0.1"),
	literal("rfc1918 172.31 top", "172.31.255.255", ReasonPrivateAddress, "172.31.255.255"),
	literal("rfc1918 192.168 hex", "0xc0a80001", ReasonPrivateAddress, "192.168.0.1"),
	literal("cgnat", "100.64.0.1", ReasonPrivateAddress, "100.64.0.1"),
	literal("ula fd", "[fd12:3456::1]", ReasonPrivateAddress, "fd12:3456::1"),
	literal("ula fc", "[FC00::1]", ReasonPrivateAddress, "fc00::1"),
	literal("6to4 private", "[2002:c0a8:101::]", ReasonPrivateAddress, "2002:c0a8:101::"),
	{name: "just outside 172.16/12", host: "172.32.0.1", port: 443, verdict: Deny, reason: ReasonDefaultDeny, want: "172.32.0.1", addrs: []string{"172.32.0.1"}, denied: "172.32.0.1"},

	// Multicast, broadcast, reserved.
	literal("multicast v4", "224.0.0.1", ReasonMulticastAddress, "224.0.0.1"),
	literal("multicast v6", "[ff02::1]", ReasonMulticastAddress, "ff02::1"),
	literal("broadcast", "255.255.255.255", ReasonReservedAddress, "255.255.255.255"),
	literal("class e", "240.0.0.1", ReasonReservedAddress, "240.0.0.1"),
	literal("test-net-1", "192.0.2.1", ReasonReservedAddress, "192.0.2.1"),
	literal("benchmarking", "198.18.0.1", ReasonReservedAddress, "198.18.0.1"),
	literal("v6 documentation", "[2001:db8::1]", ReasonReservedAddress, "2001:db8::1"),
	literal("v4-compatible", "[::127.0.0.1]", ReasonReservedAddress, "::7f00:1"),
	literal("teredo", "[2001::1]", ReasonReservedAddress, "2001::1"),

	// Lifting a block needs a CIDR inside the range, on a matching rule.
	{name: "exact loopback allow", host: "127.0.0.1", port: 5000, verdict: Allow, reason: ReasonAllowlisted, rule: "local-registry", want: "127.0.0.1", addrs: []string{"127.0.0.1"}},
	{name: "exact loopback allow, hex spelling", host: "0x7f.1", port: 5000, verdict: Allow, reason: ReasonAllowlisted, rule: "local-registry", want: "127.0.0.1", addrs: []string{"127.0.0.1"}},
	{name: "exact loopback allow, mapped spelling", host: "[::ffff:127.0.0.1]", port: 5000, verdict: Allow, reason: ReasonAllowlisted, rule: "local-registry", want: "127.0.0.1", addrs: []string{"127.0.0.1"}},
	{name: "neighbour of allowed loopback", host: "127.0.0.2", port: 5000, verdict: Deny, reason: ReasonLoopbackAddress, want: "127.0.0.2", addrs: []string{"127.0.0.2"}, denied: "127.0.0.2"},
	{name: "v6 loopback not covered by v4 rule", host: "[::1]", port: 5000, verdict: Deny, reason: ReasonLoopbackAddress, want: "::1", addrs: []string{"::1"}, denied: "::1"},
	{name: "exact loopback on other port", host: "127.0.0.1", port: 5001, verdict: Deny, reason: ReasonLoopbackAddress, want: "127.0.0.1", addrs: []string{"127.0.0.1"}, denied: "127.0.0.1"},
	{name: "ask rule lifts v6 loopback", host: "[::1]", port: 9000, verdict: Ask, reason: ReasonNeedsApproval, rule: "loopback-ask", want: "::1", addrs: []string{"::1"}},
	{name: "0.0.0.0/0 does not lift loopback", host: "127.0.0.1", port: 8080, verdict: Deny, reason: ReasonLoopbackAddress, want: "127.0.0.1", addrs: []string{"127.0.0.1"}, denied: "127.0.0.1"},
	{name: "0.0.0.0/0 does not lift private", host: "192.168.1.1", port: 8080, verdict: Deny, reason: ReasonPrivateAddress, want: "192.168.1.1", addrs: []string{"192.168.1.1"}, denied: "192.168.1.1"},
	{name: "::/0 does not lift metadata v6", host: "[fd00:ec2::254]", port: 8080, verdict: Deny, reason: ReasonMetadataAddress, want: "fd00:ec2::254", addrs: []string{"fd00:ec2::254"}, denied: "fd00:ec2::254"},
	{name: "private CIDR rule lifts", host: "10.1.2.3", port: 22, verdict: Allow, reason: ReasonAllowlisted, rule: "lab", want: "10.1.2.3", addrs: []string{"10.1.2.3"}},
	{name: "CIDR wider than 10/8 does not lift", host: "10.200.0.1", port: 23, verdict: Deny, reason: ReasonPrivateAddress, want: "10.200.0.1", addrs: []string{"10.200.0.1"}, denied: "10.200.0.1"},
	{name: "link-local /16 lifts link-local", host: "169.254.1.1", port: 80, verdict: Allow, reason: ReasonAllowlisted, rule: "link-local-web", want: "169.254.1.1", addrs: []string{"169.254.1.1"}},
	{name: "link-local /16 does not lift metadata", host: "169.254.169.254", port: 80, verdict: Deny, reason: ReasonMetadataAddress, want: "169.254.169.254", addrs: []string{"169.254.169.254"}, denied: "169.254.169.254"},

	// Public literals.
	{name: "public literal, no rule", host: "8.8.8.8", port: 443, verdict: Deny, reason: ReasonDefaultDeny, want: "8.8.8.8", addrs: []string{"8.8.8.8"}, denied: "8.8.8.8"},
	{name: "public literal, dev ports", host: "8.8.8.8", port: 8080, verdict: Allow, reason: ReasonAllowlisted, rule: "dev-ports-anywhere", want: "8.8.8.8", addrs: []string{"8.8.8.8"}},
	{name: "public v6 literal, dev ports", host: "[2606:4700::1111]", port: 8000, verdict: Allow, reason: ReasonAllowlisted, rule: "dev-ports-anywhere", want: "2606:4700::1111", addrs: []string{"2606:4700::1111"}},
	{name: "6to4 public", host: "[2002:808:808::1]", port: 8100, verdict: Allow, reason: ReasonAllowlisted, rule: "dev-ports-anywhere", want: "2002:808:808::1", addrs: []string{"2002:808:808::1"}},
	{name: "nat64 public", host: "[64:ff9b::808:808]", port: 8000, verdict: Allow, reason: ReasonAllowlisted, rule: "dev-ports-anywhere", want: "64:ff9b::808:808", addrs: []string{"64:ff9b::808:808"}},
	{name: "deny CIDR beats allow CIDR", host: "9.9.9.9", port: 443, verdict: Deny, reason: ReasonDeniedByRule, rule: "no-dns-host", want: "9.9.9.9", addrs: []string{"9.9.9.9"}, denied: "9.9.9.9"},
	{name: "deny CIDR on other port", host: "9.9.9.9", port: 8053, verdict: Allow, reason: ReasonAllowlisted, rule: "dev-ports-anywhere", want: "9.9.9.9", addrs: []string{"9.9.9.9"}},

	// Names: normalisation and matching.
	{name: "allowlisted name", host: "pypi.org", port: 443, verdict: Allow, reason: ReasonAllowlisted, rule: "pypi", want: "pypi.org", addrs: []string{"151.101.0.223"}},
	{name: "upper case and trailing dot", host: "PyPI.ORG.", port: 443, verdict: Allow, reason: ReasonAllowlisted, rule: "pypi", want: "pypi.org", addrs: []string{"151.101.0.223"}},
	{name: "allowlisted name, wrong port", host: "pypi.org", port: 80, verdict: Deny, reason: ReasonDefaultDeny, want: "pypi.org", addrs: []string{"151.101.0.223"}, denied: "151.101.0.223"},
	{name: "wildcard, both families", host: "files.pythonhosted.org", port: 443, verdict: Allow, reason: ReasonAllowlisted, rule: "pypi", want: "files.pythonhosted.org", addrs: []string{"151.101.1.63", "2a04:4e42::319"}},
	{name: "wildcard, deep", host: "a.b.files.pythonhosted.org", port: 443, verdict: Allow, reason: ReasonAllowlisted, rule: "pypi", want: "a.b.files.pythonhosted.org", addrs: []string{"151.101.1.64"}},
	{name: "wildcard does not match apex", host: "pythonhosted.org", port: 443, verdict: Deny, reason: ReasonDefaultDeny, want: "pythonhosted.org"},
	{name: "wildcard needs a label boundary", host: "evilpythonhosted.org", port: 443, verdict: Deny, reason: ReasonDefaultDeny, want: "evilpythonhosted.org"},
	{name: "default ports 80", host: "github.com", port: 80, verdict: Allow, reason: ReasonAllowlisted, rule: "github", want: "github.com", addrs: []string{"140.82.112.3"}},
	{name: "default ports exclude 22", host: "github.com", port: 22, verdict: Deny, reason: ReasonDefaultDeny, want: "github.com", addrs: []string{"140.82.112.3"}, denied: "140.82.112.3"},
	{name: "subdomain by wildcard", host: "api.github.com", port: 443, verdict: Allow, reason: ReasonAllowlisted, rule: "github", want: "api.github.com", addrs: []string{"140.82.112.6"}},
	{name: "deny beats allow", host: "gist.github.com", port: 443, verdict: Deny, reason: ReasonDeniedByRule, rule: "no-gists", want: "gist.github.com"},
	{name: "idna unicode", host: "bücher.example", port: 443, verdict: Allow, reason: ReasonAllowlisted, rule: "idn", want: "xn--bcher-kva.example", addrs: []string{"93.184.215.14"}},
	{name: "idna upper-case unicode", host: "BÜCHER.EXAMPLE.", port: 443, verdict: Allow, reason: ReasonAllowlisted, rule: "idn", want: "xn--bcher-kva.example", addrs: []string{"93.184.215.14"}},
	{name: "idna a-label", host: "xn--bcher-kva.example", port: 443, verdict: Allow, reason: ReasonAllowlisted, rule: "idn", want: "xn--bcher-kva.example", addrs: []string{"93.184.215.14"}},
	{name: "ask rule", host: "docs.example.org", port: 443, verdict: Ask, reason: ReasonNeedsApproval, rule: "docs", want: "docs.example.org", addrs: []string{"93.184.215.15"}},
	{name: "dedup resolver answers", host: "dup.pythonhosted.org", port: 443, verdict: Allow, reason: ReasonAllowlisted, rule: "pypi", want: "dup.pythonhosted.org", addrs: []string{"151.101.1.1"}},

	// Methods, for plain HTTP only.
	{name: "method allowed", host: "api.example.net", port: 80, method: "GET", scheme: SchemeHTTP, verdict: Allow, reason: ReasonAllowlisted, rule: "api-readonly", want: "api.example.net", addrs: []string{"93.184.215.16"}},
	{name: "method allowed, lower-case rule", host: "api.example.net", port: 80, method: "HEAD", scheme: SchemeHTTP, verdict: Allow, reason: ReasonAllowlisted, rule: "api-readonly", want: "api.example.net", addrs: []string{"93.184.215.16"}},
	{name: "method not allowed", host: "api.example.net", port: 80, method: "POST", scheme: SchemeHTTP, verdict: Deny, reason: ReasonDefaultDeny, want: "api.example.net", addrs: []string{"93.184.215.16"}, denied: "93.184.215.16"},
	{name: "method unknown in tunnel: allow rule with methods skipped", host: "api.example.net", port: 80, method: "GET", scheme: "https", verdict: Deny, reason: ReasonDefaultDeny, want: "api.example.net", addrs: []string{"93.184.215.16"}, denied: "93.184.215.16"},
	{name: "method deny beats allow", host: "api2.example.net", port: 443, method: "DELETE", scheme: SchemeHTTP, verdict: Deny, reason: ReasonDeniedByRule, rule: "api2-no-delete", want: "api2.example.net"},
	{name: "other method passes", host: "api2.example.net", port: 443, method: "GET", scheme: SchemeHTTP, verdict: Allow, reason: ReasonKnownSafe, rule: "api2", want: "api2.example.net", addrs: []string{"93.184.215.17"}},
	{name: "method unknown in tunnel: deny rule with methods applies", host: "api2.example.net", port: 443, scheme: "https", verdict: Deny, reason: ReasonDeniedByRule, rule: "api2-no-delete", want: "api2.example.net"},

	// DNS answers pointing inside (rebinding-style), checked per address.
	{name: "allowed name resolves to loopback", host: "rebind.pythonhosted.org", port: 443, verdict: Deny, reason: ReasonLoopbackAddress, want: "rebind.pythonhosted.org", addrs: []string{"127.0.0.1"}, denied: "127.0.0.1"},
	{name: "allowed name resolves to metadata", host: "meta.pythonhosted.org", port: 443, verdict: Deny, reason: ReasonMetadataAddress, want: "meta.pythonhosted.org", addrs: []string{"169.254.169.254"}, denied: "169.254.169.254"},
	{name: "allowed name resolves to v6 metadata", host: "meta6.pythonhosted.org", port: 443, verdict: Deny, reason: ReasonMetadataAddress, want: "meta6.pythonhosted.org", addrs: []string{"fd00:ec2::254"}, denied: "fd00:ec2::254"},
	{name: "public plus private answer", host: "mixed.pythonhosted.org", port: 443, verdict: Deny, reason: ReasonPrivateAddress, want: "mixed.pythonhosted.org", addrs: []string{"151.101.1.1", "10.0.0.5"}, denied: "10.0.0.5"},
	{name: "resolver returns v4-mapped private", host: "mapped.pythonhosted.org", port: 443, verdict: Deny, reason: ReasonPrivateAddress, want: "mapped.pythonhosted.org", addrs: []string{"192.168.1.1"}, denied: "192.168.1.1"},
	{name: "resolver returns nat64 metadata", host: "nat64.pythonhosted.org", port: 443, verdict: Deny, reason: ReasonMetadataAddress, want: "nat64.pythonhosted.org", addrs: []string{"64:ff9b::a9fe:a9fe"}, denied: "64:ff9b::a9fe:a9fe"},
	{name: "resolver returns ula", host: "ula.pythonhosted.org", port: 443, verdict: Deny, reason: ReasonPrivateAddress, want: "ula.pythonhosted.org", addrs: []string{"fd12::1"}, denied: "fd12::1"},
	{name: "resolver returns cgnat", host: "cgnat.pythonhosted.org", port: 443, verdict: Deny, reason: ReasonPrivateAddress, want: "cgnat.pythonhosted.org", addrs: []string{"100.64.0.1"}, denied: "100.64.0.1"},
	{name: "resolver returns 0.0.0.0", host: "zero.pythonhosted.org", port: 443, verdict: Deny, reason: ReasonUnspecifiedAddress, want: "zero.pythonhosted.org", addrs: []string{"0.0.0.0"}, denied: "0.0.0.0"},
	{name: "localhost, no rule could allow: no lookup", host: "localhost", port: 443, verdict: Deny, reason: ReasonDefaultDeny, want: "localhost"},
	{name: "localhost", host: "LocalHost.", port: 8080, verdict: Deny, reason: ReasonLoopbackAddress, want: "localhost", addrs: []string{"127.0.0.1", "::1"}, denied: "127.0.0.1"},
	{name: "metadata by name", host: "metadata.google.internal", port: 80, verdict: Deny, reason: ReasonMetadataAddress, want: "metadata.google.internal", addrs: []string{"169.254.169.254"}, denied: "169.254.169.254"},
	{name: "name into a lifted private CIDR", host: "lab.internal", port: 22, verdict: Allow, reason: ReasonAllowlisted, rule: "lab", want: "lab.internal", addrs: []string{"10.1.2.3"}},
	{name: "nxdomain", host: "nxdomain.pythonhosted.org", port: 443, verdict: Deny, reason: ReasonDNSFailure, want: "nxdomain.pythonhosted.org"},
	{name: "empty answer", host: "empty.pythonhosted.org", port: 443, verdict: Deny, reason: ReasonDNSFailure, want: "empty.pythonhosted.org"},

	// Malformed hosts and ports.
	{name: "userinfo trick", host: "pypi.org@evil.example", port: 443, verdict: Deny, reason: ReasonBadRequest},
	{name: "empty host", host: "", port: 443, verdict: Deny, reason: ReasonBadRequest},
	{name: "percent-encoded host", host: "%31%32%37.0.0.1", port: 443, verdict: Deny, reason: ReasonBadRequest},
	{name: "NUL in host", host: "pypi.org\x00.evil.example", port: 443, verdict: Deny, reason: ReasonBadRequest},
	{name: "five numeric parts", host: "1.2.3.4.5", port: 443, verdict: Deny, reason: ReasonBadRequest},
	{name: "part over 255", host: "256.0.0.1", port: 443, verdict: Deny, reason: ReasonBadRequest},
	{name: "over 32 bits", host: "0x100000000", port: 443, verdict: Deny, reason: ReasonBadRequest},
	{name: "bad octal digit", host: "08.0.0.1", port: 443, verdict: Deny, reason: ReasonBadRequest},
	{name: "name ending in number", host: "example.123", port: 443, verdict: Deny, reason: ReasonBadRequest},
	{name: "underscore", host: "under_score.example", port: 443, verdict: Deny, reason: ReasonBadRequest},
	{name: "brackets around v4", host: "[127.0.0.1]", port: 443, verdict: Deny, reason: ReasonBadRequest},
	{name: "two trailing dots", host: "pypi.org..", port: 443, verdict: Deny, reason: ReasonBadRequest},
	{name: "full-width percent", host: "pypi．org％2f", port: 443, verdict: Deny, reason: ReasonBadRequest},
	{name: "port zero", host: "pypi.org", port: 0, verdict: Deny, reason: ReasonBadRequest, want: "pypi.org"},
}

func TestDecideDestinations(t *testing.T) {
	if len(destCases) < 60 {
		t.Fatalf("destination table has %d cases, want at least 60", len(destCases))
	}
	p := loadTestPolicy(t)
	stub := newStub()
	d := NewDecider(p, WithResolver(stub))
	seen := map[string]bool{}
	for _, tc := range destCases {
		if seen[tc.name] {
			t.Fatalf("duplicate case name %q", tc.name)
		}
		seen[tc.name] = true
		t.Run(tc.name, func(t *testing.T) {
			got := d.Decide(context.Background(), Request{Host: tc.host, Port: tc.port, Method: tc.method, Scheme: tc.scheme})
			want := Decision{
				Verdict: tc.verdict, Reason: tc.reason, RuleID: tc.rule,
				Host: tc.want, Port: tc.port, Addrs: addrs(tc.addrs...), DeniedAddr: addr(tc.denied),
				PolicyID: "test-egress", PolicySHA256: p.SHA256,
			}
			if diff := cmp.Diff(want, got, addrCmp); diff != "" {
				t.Errorf("Decide(%q, %d) mismatch (-want +got):\n%s", tc.host, tc.port, diff)
			}
			calls := stub.takeCalls()
			h, err := ParseHost(tc.host)
			if err == nil && h.IsIP() && len(calls) > 0 {
				t.Errorf("IP literal %q was resolved: %v", tc.host, calls)
			}
			// A name is looked up only when its addresses can matter.
			if err == nil && !h.IsIP() {
				var want []string
				if len(tc.addrs) > 0 || tc.reason == ReasonDNSFailure {
					want = []string{"ip " + h.Name + "."}
				}
				if diff := cmp.Diff(want, calls); diff != "" {
					t.Errorf("lookups (-want +got):\n%s", diff)
				}
			}
		})
	}
}

// TestEvaluateWithoutResolver checks the pure layer directly with the
// addresses a proxy would have resolved.
func TestEvaluateWithoutResolver(t *testing.T) {
	p := loadTestPolicy(t)
	tests := []struct {
		name  string
		req   Request
		addrs []netip.Addr
		want  Decision
	}{
		{
			name:  "name with public answer",
			req:   Request{Host: "pypi.org", Port: 443},
			addrs: addrs("151.101.0.223"),
			want:  Decision{Verdict: Allow, Reason: ReasonAllowlisted, RuleID: "pypi", Host: "pypi.org", Port: 443, Addrs: addrs("151.101.0.223")},
		},
		{
			name:  "literal ignores the given addresses",
			req:   Request{Host: "127.1", Port: 443},
			addrs: addrs("151.101.0.223"),
			want:  Decision{Verdict: Deny, Reason: ReasonLoopbackAddress, Host: "127.0.0.1", Port: 443, Addrs: addrs("127.0.0.1"), DeniedAddr: addr("127.0.0.1")},
		},
		{
			name: "name without addresses",
			req:  Request{Host: "pypi.org", Port: 443},
			want: Decision{Verdict: Deny, Reason: ReasonDNSFailure, Host: "pypi.org", Port: 443},
		},
		{
			name:  "ask rule off its ports",
			req:   Request{Host: "docs.example.org", Port: 8080},
			addrs: addrs("93.184.215.15"),
			want:  Decision{Verdict: Allow, Reason: ReasonAllowlisted, RuleID: "dev-ports-anywhere", Host: "docs.example.org", Port: 8080, Addrs: addrs("93.184.215.15")},
		},
		{
			name:  "deny CIDR on one address of an allowed name",
			req:   Request{Host: "pypi.org", Port: 443},
			addrs: addrs("151.101.0.223", "9.9.9.9"),
			want:  Decision{Verdict: Deny, Reason: ReasonDeniedByRule, RuleID: "no-dns-host", Host: "pypi.org", Port: 443, Addrs: addrs("151.101.0.223", "9.9.9.9"), DeniedAddr: addr("9.9.9.9")},
		},
		{
			name:  "zoned answer is stripped",
			req:   Request{Host: "pypi.org", Port: 443},
			addrs: []netip.Addr{netip.MustParseAddr("fe80::1%eth0")},
			want:  Decision{Verdict: Deny, Reason: ReasonLinkLocalAddress, Host: "pypi.org", Port: 443, Addrs: addrs("fe80::1"), DeniedAddr: addr("fe80::1")},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tc.want.PolicyID, tc.want.PolicySHA256 = p.ID, p.SHA256
			got := p.Evaluate(tc.req, tc.addrs)
			if diff := cmp.Diff(tc.want, got, addrCmp); diff != "" {
				t.Errorf("Evaluate mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

func TestDefaultAsk(t *testing.T) {
	p, err := Load([]byte("id: ask-all\ndefault: ask\nrules:\n  - {id: deny-x, decision: deny, hosts: [x.example]}\n"))
	if err != nil {
		t.Fatal(err)
	}
	stub := &stubResolver{answers: map[string][]string{
		"y.example.": {"93.184.215.20"},
		"x.example.": {"93.184.215.21"},
		"z.example.": {"10.9.9.9"},
	}}
	d := NewDecider(p, WithResolver(stub))
	tests := []struct {
		host   string
		want   Verdict
		reason string
	}{
		{"y.example", Ask, ReasonNeedsApproval},
		{"x.example", Deny, ReasonDeniedByRule},
		{"z.example", Deny, ReasonPrivateAddress}, // default ask never reaches special ranges
	}
	for _, tc := range tests {
		got := d.Decide(context.Background(), Request{Host: tc.host, Port: 443})
		if got.Verdict != tc.want || got.Reason != tc.reason {
			t.Errorf("Decide(%s) = %s/%s, want %s/%s", tc.host, got.Verdict, got.Reason, tc.want, tc.reason)
		}
	}
}

func TestResolve(t *testing.T) {
	stub := newStub()
	d := NewDecider(loadTestPolicy(t), WithResolver(stub))
	got, err := d.Resolve(context.Background(), "DUP.pythonhosted.org.")
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(addrs("151.101.1.1"), got, addrCmp); diff != "" {
		t.Errorf("Resolve (-want +got):\n%s", diff)
	}
	if _, err := d.Resolve(context.Background(), "nxdomain.example"); !errors.Is(err, ErrResolve) || !errors.Is(err, errNXDomain) {
		t.Errorf("Resolve(nxdomain) error = %v, want ErrResolve wrapping the resolver's error", err)
	}
	got, err = d.Resolve(context.Background(), "0x7f.1")
	if err != nil || len(got) != 1 || got[0] != netip.MustParseAddr("127.0.0.1") {
		t.Errorf("Resolve(0x7f.1) = %v, %v; want [127.0.0.1]", got, err)
	}
	if calls := stub.takeCalls(); len(calls) != 2 {
		t.Errorf("lookups = %v, want two (the literal is not looked up)", calls)
	}
	if _, err := d.Resolve(context.Background(), "a@b"); !errors.Is(err, ErrUserinfo) {
		t.Errorf("Resolve(a@b) error = %v, want ErrUserinfo", err)
	}
}

func BenchmarkDecide(b *testing.B) {
	p := loadTestPolicy(b)
	stub := newStub()
	stub.quiet = true
	d := NewDecider(p, WithResolver(stub))
	ctx := context.Background()
	for _, bc := range []struct {
		name string
		req  Request
	}{
		{"literal", Request{Host: "0x7f.1", Port: 5000}},
		{"name", Request{Host: "files.pythonhosted.org", Port: 443}},
		{"idna", Request{Host: "bücher.example", Port: 443}},
	} {
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if got := d.Decide(ctx, bc.req); got.Verdict != Allow {
					b.Fatalf("Decide = %+v", got)
				}
			}
		})
	}
}
