package netpol

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"net/netip"
	"os"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func prefixes(ss ...string) []netip.Prefix {
	out := make([]netip.Prefix, len(ss))
	for i, s := range ss {
		out[i] = netip.MustParsePrefix(s)
	}
	return out
}

var prefixCmp = cmp.Comparer(func(a, b netip.Prefix) bool { return a == b })

func TestLoadFile(t *testing.T) {
	p := loadTestPolicy(t)
	data, err := os.ReadFile("testdata/policy.yaml")
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(data)
	web := []PortRange{{80, 80}, {443, 443}}
	want := &Policy{
		ID: "test-egress", Version: "2025-01-01", Default: Deny, SHA256: hex.EncodeToString(sum[:]),
		Rules: []Rule{
			{ID: "pypi", Decision: Allow, Hosts: []string{"pypi.org", "*.pythonhosted.org"}, Ports: []PortRange{{443, 443}}, Justification: "package installs", Reason: ReasonAllowlisted, Line: 7},
			{ID: "github", Decision: Allow, Hosts: []string{"github.com", "*.github.com"}, Ports: web, Justification: "source checkouts on the default ports 80 and 443", Reason: ReasonAllowlisted, Line: 12},
			{ID: "no-gists", Decision: Deny, Hosts: []string{"gist.github.com"}, Ports: web, Justification: "gists are an easy exfiltration channel", Reason: ReasonDeniedByRule, Line: 16},
			{ID: "idn", Decision: Allow, Hosts: []string{"xn--bcher-kva.example"}, Ports: web, Reason: ReasonAllowlisted, Line: 20},
			{ID: "docs", Decision: Ask, Hosts: []string{"docs.example.org"}, Ports: web, Reason: ReasonNeedsApproval, Line: 23},
			{ID: "api-readonly", Decision: Allow, Hosts: []string{"api.example.net"}, Ports: []PortRange{{80, 80}}, Methods: []string{"GET", "HEAD"}, Reason: ReasonAllowlisted, Line: 26},
			{ID: "api2-no-delete", Decision: Deny, Hosts: []string{"api2.example.net"}, Ports: web, Methods: []string{"DELETE"}, Reason: ReasonDeniedByRule, Line: 31},
			{ID: "api2", Decision: Allow, Hosts: []string{"api2.example.net"}, Ports: web, Reason: ReasonKnownSafe, Line: 35},
			{ID: "local-registry", Decision: Allow, CIDRs: prefixes("127.0.0.1/32"), Ports: []PortRange{{5000, 5000}}, Reason: ReasonAllowlisted, Line: 39},
			{ID: "dev-ports-anywhere", Decision: Allow, CIDRs: prefixes("0.0.0.0/0", "::/0"), Ports: []PortRange{{8000, 8100}}, Justification: "must not reach loopback, private or metadata ranges", Reason: ReasonAllowlisted, Line: 43},
			{ID: "lab", Decision: Allow, CIDRs: prefixes("10.1.0.0/16"), Ports: []PortRange{{22, 22}}, Reason: ReasonAllowlisted, Line: 48},
			{ID: "too-wide", Decision: Allow, CIDRs: prefixes("10.0.0.0/7"), Ports: []PortRange{{23, 23}}, Reason: ReasonAllowlisted, Line: 52},
			{ID: "link-local-web", Decision: Allow, CIDRs: prefixes("169.254.0.0/16"), Ports: []PortRange{{80, 80}}, Reason: ReasonAllowlisted, Line: 56},
			{ID: "loopback-ask", Decision: Ask, CIDRs: prefixes("::1/128"), Ports: []PortRange{{9000, 9000}}, Reason: ReasonNeedsApproval, Line: 60},
			{ID: "no-dns-host", Decision: Deny, CIDRs: prefixes("9.9.9.9/32"), Ports: web, Reason: ReasonDeniedByRule, Line: 64},
		},
	}
	if diff := cmp.Diff(want, p, prefixCmp); diff != "" {
		t.Errorf("LoadFile (-want +got):\n%s", diff)
	}
	if _, err := LoadFile("testdata/missing.yaml"); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("LoadFile(missing) error = %v, want ErrNotExist", err)
	}
}

func TestLoadMinimal(t *testing.T) {
	p, err := Load([]byte("id: empty\n"))
	if err != nil {
		t.Fatal(err)
	}
	if p.Default != Deny || len(p.Rules) != 0 {
		t.Errorf("Load(minimal) = %+v, want default deny and no rules", p)
	}
	if got := p.Evaluate(Request{Host: "8.8.8.8", Port: 443}, nil); got.Verdict != Deny || got.Reason != ReasonDefaultDeny {
		t.Errorf("empty policy decision = %s/%s, want deny/default_deny", got.Verdict, got.Reason)
	}
	p, err = Load([]byte("id: m\nrules:\n  - {id: a, decision: allow, cidrs: [\"::ffff:10.0.0.0/104\"], ports: [1-65535]}\n"))
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(prefixes("10.0.0.0/8"), p.Rules[0].CIDRs, prefixCmp); diff != "" {
		t.Errorf("mapped CIDR (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]PortRange{{1, 65535}}, p.Rules[0].Ports); diff != "" {
		t.Errorf("port range (-want +got):\n%s", diff)
	}
}

func TestLoadErrors(t *testing.T) {
	tests := []struct {
		name string
		yaml string
		line int    // expected PolicyError line; -1 for a YAML syntax error
		msg  string // substring of the error
	}{
		{"empty", "", 0, "empty document"},
		{"no id", "version: 1\n", 0, "id is required"},
		{"unknown top-level field", "id: x\nrulez: []\n", -1, "rulez"},
		{"unknown rule field", "id: x\nrules:\n  - id: a\n    decision: allow\n    host: [a.com]\n", 5, `unknown rule field "host"`},
		{"duplicate key", "id: x\nid: y\n", -1, "already defined"},
		{"two documents", "id: x\n---\nid: y\n", 2, "more than one"},
		{"default allow", "id: x\ndefault: allow\n", 2, "not permitted"},
		{"bad default", "id: x\ndefault: maybe\n", 2, "deny or ask"},
		{"rule without id", "id: x\nrules:\n  - decision: allow\n    hosts: [a.com]\n", 3, "rule id is required"},
		{"duplicate rule id", "id: x\nrules:\n  - {id: a, decision: allow, hosts: [a.com]}\n  - {id: a, decision: deny, hosts: [b.com]}\n", 4, "duplicate rule id"},
		{"no decision", "id: x\nrules:\n  - id: a\n    hosts: [a.com]\n", 3, "decision is required"},
		{"bad decision", "id: x\nrules:\n  - id: a\n    decision: permit\n    hosts: [a.com]\n", 4, "allow, ask or deny"},
		{"no destination", "id: x\nrules:\n  - id: a\n    decision: allow\n", 3, "needs hosts or cidrs"},
		{"ip in hosts", "id: x\nrules:\n  - id: a\n    decision: allow\n    hosts:\n      - ok.com\n      - 127.0.0.1\n", 7, "belong in cidrs"},
		{"bad host", "id: x\nrules:\n  - id: a\n    decision: allow\n    hosts: [a@b.com]\n", 5, "host"},
		{"middle wildcard", "id: x\nrules:\n  - id: a\n    decision: allow\n    hosts: [\"a.*.com\"]\n", 5, "wildcard"},
		{"tld wildcard", "id: x\nrules:\n  - id: a\n    decision: allow\n    hosts: [\"*.com\"]\n", 5, "two labels"},
		{"unquoted wildcard", "id: x\nrules:\n  - id: a\n    decision: allow\n    hosts: [*.com]\n", -1, "yaml"},
		{"bad cidr", "id: x\nrules:\n  - id: a\n    decision: allow\n    cidrs: [10.0.0.0/33]\n", 5, "cidr"},
		{"cidr host bits", "id: x\nrules:\n  - id: a\n    decision: allow\n    cidrs: [10.0.0.1/8]\n", 5, "did you mean 10.0.0.0/8"},
		{"cidr odd spelling", "id: x\nrules:\n  - id: a\n    decision: allow\n    cidrs: [0x7f.1]\n", 5, "cidr"},
		{"cidr zone", "id: x\nrules:\n  - id: a\n    decision: allow\n    cidrs: [\"fe80::1%eth0\"]\n", 5, "zone"},
		{"port zero", "id: x\nrules:\n  - id: a\n    decision: allow\n    hosts: [a.com]\n    ports: [0]\n", 6, "port"},
		{"port too big", "id: x\nrules:\n  - id: a\n    decision: allow\n    hosts: [a.com]\n    ports: [65536]\n", 6, "port"},
		{"reversed range", "id: x\nrules:\n  - id: a\n    decision: allow\n    hosts: [a.com]\n    ports: [\"9-1\"]\n", 6, "low-high"},
		{"bad method", "id: x\nrules:\n  - id: a\n    decision: allow\n    hosts: [a.com]\n    methods: [\"GE T\"]\n", 6, "HTTP token"},
		{"reason mismatch", "id: x\nrules:\n  - id: a\n    decision: deny\n    hosts: [a.com]\n    reason: allowlisted\n", 6, "does not fit"},
		{"mapping as host", "id: x\nrules:\n  - id: a\n    decision: allow\n    hosts: [{a: b}]\n", 5, "scalar"},
		{"rule not a mapping", "id: x\nrules:\n  - just-a-string\n", 3, "mapping"},
		{"rules not a list", "id: x\nrules: {a: b}\n", -1, "cannot unmarshal"},
		{"syntax", "id: [x\n", -1, "yaml"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Load([]byte(tc.yaml))
			if !errors.Is(err, ErrInvalidPolicy) {
				t.Fatalf("Load error = %v, want ErrInvalidPolicy", err)
			}
			if !strings.Contains(err.Error(), tc.msg) {
				t.Errorf("Load error = %q, want it to contain %q", err, tc.msg)
			}
			var pe *PolicyError
			if tc.line >= 0 {
				if !errors.As(err, &pe) {
					t.Fatalf("Load error %v is not a *PolicyError", err)
				}
				if pe.Line != tc.line {
					t.Errorf("error line = %d, want %d (%v)", pe.Line, tc.line, err)
				}
			} else if !strings.Contains(err.Error(), "line") {
				t.Errorf("YAML error %q names no line", err)
			}
		})
	}
}

// FuzzLoadPolicy checks that Load never panics and that every policy it
// accepts is internally consistent.
func FuzzLoadPolicy(f *testing.F) {
	if data, err := os.ReadFile("testdata/policy.yaml"); err == nil {
		f.Add(data)
	}
	for _, s := range []string{
		"id: x\n",
		"id: x\ndefault: ask\nrules:\n  - {id: a, decision: allow, hosts: [\"*.a.com\"], ports: [1-2]}\n",
		"id: x\nrules:\n  - {id: a, decision: deny, cidrs: [::/0], methods: [GET]}\n",
		"id: x\nrules: [{id: a, decision: ask, hosts: [bücher.example], reason: needs_approval}]\n",
		"id: &a x\nversion: *a\n",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		p, err := Load(data)
		if err != nil {
			if !errors.Is(err, ErrInvalidPolicy) {
				t.Fatalf("Load error %v does not wrap ErrInvalidPolicy", err)
			}
			return
		}
		if p.ID == "" || (p.Default != Deny && p.Default != Ask) || len(p.SHA256) != 64 {
			t.Fatalf("accepted policy %+v", p)
		}
		for _, r := range p.Rules {
			if r.ID == "" || len(r.Ports) == 0 || len(r.Hosts)+len(r.CIDRs) == 0 {
				t.Fatalf("accepted rule %+v", r)
			}
			if _, err := ruleReason(r.Decision, r.Reason); err != nil {
				t.Fatalf("rule %q: %v", r.ID, err)
			}
			for _, h := range r.Hosts {
				if got, err := parseRuleHost(h); err != nil || got != h {
					t.Fatalf("rule %q host %q is not canonical: %q, %v", r.ID, h, got, err)
				}
			}
			for _, c := range r.CIDRs {
				if c.Masked() != c || c.Addr().Is4In6() {
					t.Fatalf("rule %q cidr %v is not canonical", r.ID, c)
				}
			}
		}
		// A loaded policy decides without panicking and stamps itself.
		d := p.Evaluate(Request{Host: "pypi.org", Port: 443}, []netip.Addr{netip.MustParseAddr("151.101.0.223")})
		if d.PolicySHA256 != p.SHA256 || d.Reason == "" {
			t.Fatalf("decision %+v", d)
		}
	})
}
