package netpol

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os"
	"slices"
	"strconv"
	"strings"

	"github.com/agentaudit/agentaudit/internal/events"
	"go.yaml.in/yaml/v3"
)

// Verdict is the outcome of an egress check.
type Verdict string

// Verdicts, as the events schema spells them.
const (
	Allow Verdict = "allow"
	Ask   Verdict = "ask"
	Deny  Verdict = "deny"
)

// Reason codes from the shared list (events.ReasonCodes), as strings. They
// go into the net.egress event and the proxy's X-Deny-Reason header
// unchanged.
const (
	ReasonAllowlisted        = string(events.ReasonAllowlisted)
	ReasonKnownSafe          = string(events.ReasonKnownSafe)
	ReasonDeniedByRule       = string(events.ReasonDeniedByRule)
	ReasonDefaultDeny        = string(events.ReasonDefaultDeny)
	ReasonNeedsApproval      = string(events.ReasonNeedsApproval)
	ReasonPrivateAddress     = string(events.ReasonPrivateAddress)
	ReasonLoopbackAddress    = string(events.ReasonLoopbackAddress)
	ReasonLinkLocalAddress   = string(events.ReasonLinkLocalAddress)
	ReasonMetadataAddress    = string(events.ReasonMetadataAddress)
	ReasonMulticastAddress   = string(events.ReasonMulticastAddress)
	ReasonUnspecifiedAddress = string(events.ReasonUnspecifiedAddress)
	ReasonReservedAddress    = string(events.ReasonReservedAddress)
	ReasonDNSFailure         = string(events.ReasonDNSFailure)
	ReasonBadRequest         = string(events.ReasonBadRequest)
)

// ErrInvalidPolicy is wrapped by every policy load error.
var ErrInvalidPolicy = errors.New("netpol: invalid policy")

// PolicyError is a policy load error at a line of the YAML source.
type PolicyError struct {
	Line int // 1-based; 0 when the error is not tied to a line
	Msg  string
}

func (e *PolicyError) Error() string {
	if e.Line > 0 {
		return fmt.Sprintf("netpol: policy line %d: %s", e.Line, e.Msg)
	}
	return "netpol: policy: " + e.Msg
}

// Unwrap makes errors.Is(err, ErrInvalidPolicy) hold.
func (e *PolicyError) Unwrap() error { return ErrInvalidPolicy }

func policyErr(line int, format string, args ...any) error {
	return &PolicyError{Line: line, Msg: fmt.Sprintf(format, args...)}
}

// PortRange is an inclusive range of TCP ports.
type PortRange struct{ Lo, Hi uint16 }

// Contains reports whether port lies in the range.
func (r PortRange) Contains(port uint16) bool { return port >= r.Lo && port <= r.Hi }

// defaultPorts apply to a rule that names no ports: plain and TLS web.
var defaultPorts = []PortRange{{80, 80}, {443, 443}}

// Rule is one egress rule. A rule matches a destination when the port is
// in Ports, the method passes Methods, and either the host name matches
// one of Hosts or the address is inside one of CIDRs.
type Rule struct {
	ID       string
	Decision Verdict
	// Hosts are normalised names; "*.example.com" matches every name
	// strictly below example.com ("a.example.com", "a.b.example.com") but
	// not "example.com" itself, which needs its own entry.
	Hosts []string
	// CIDRs match the literal or resolved address. Only a CIDR inside a
	// special-purpose range (loopback, private, metadata, …) lifts that
	// range's block; "0.0.0.0/0" does not reach 127.0.0.1.
	CIDRs []netip.Prefix
	Ports []PortRange
	// Methods restrict a rule to these upper-case HTTP methods. They can
	// only be checked on plain HTTP; for a CONNECT tunnel the method is
	// unknown, so an allow or ask rule with Methods does not match it and a
	// deny rule with Methods does.
	Methods       []string
	Justification string
	Reason        string // reason code the rule's decisions carry
	Line          int    // line of the rule in the policy file
}

// Policy is a loaded egress policy.
type Policy struct {
	ID      string
	Version string
	// Default is the verdict when no rule matches: Deny (the default) or
	// Ask. Allow is refused at load: a policy that allows everything not
	// named would make the allowlist meaningless.
	Default Verdict
	Rules   []Rule
	// SHA256 is the hex sha256 of the policy file's bytes, stamped on
	// every decision so an event names the exact policy that made it.
	SHA256 string
}

// LoadFile reads and parses a policy file.
func LoadFile(path string) (*Policy, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("netpol: read policy: %w", err)
	}
	return Load(data)
}

type scalar struct {
	Value string
	Line  int
}

func (s *scalar) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind != yaml.ScalarNode {
		return policyErr(n.Line, "expected a scalar value")
	}
	s.Value, s.Line = n.Value, n.Line
	return nil
}

type rawPolicy struct {
	ID      scalar    `yaml:"id"`
	Version scalar    `yaml:"version"`
	Default scalar    `yaml:"default"`
	Rules   []rawRule `yaml:"rules"`
}

type rawRuleFields struct {
	ID            scalar   `yaml:"id"`
	Decision      scalar   `yaml:"decision"`
	Hosts         []scalar `yaml:"hosts"`
	CIDRs         []scalar `yaml:"cidrs"`
	Ports         []scalar `yaml:"ports"`
	Methods       []scalar `yaml:"methods"`
	Justification scalar   `yaml:"justification"`
	Reason        scalar   `yaml:"reason"`
}

type rawRule struct {
	rawRuleFields
	Line int
}

var ruleKeys = []string{"id", "decision", "hosts", "cidrs", "ports", "methods", "justification", "reason"}

// UnmarshalYAML checks keys itself: yaml.v3's KnownFields does not reach
// into values decoded through Node.Decode.
func (r *rawRule) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind != yaml.MappingNode {
		return policyErr(n.Line, "rule must be a mapping")
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k := n.Content[i]
		if !slices.Contains(ruleKeys, k.Value) {
			return policyErr(k.Line, "unknown rule field %q (known: %s)", k.Value, strings.Join(ruleKeys, ", "))
		}
	}
	r.Line = n.Line
	return n.Decode(&r.rawRuleFields)
}

// Load parses a policy from YAML. Parsing is strict: unknown fields,
// duplicate keys, more than one document and every invalid value are
// errors that name the line.
func Load(data []byte) (*Policy, error) {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	var raw rawPolicy
	if err := dec.Decode(&raw); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, policyErr(0, "empty document")
		}
		var pe *PolicyError
		if errors.As(err, &pe) {
			return nil, pe
		}
		return nil, fmt.Errorf("%w: %w", ErrInvalidPolicy, err)
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); !errors.Is(err, io.EOF) {
		return nil, policyErr(extra.Line, "more than one YAML document")
	}
	p := &Policy{
		ID:      raw.ID.Value,
		Version: raw.Version.Value,
		Default: Verdict(raw.Default.Value),
	}
	sum := sha256.Sum256(data)
	p.SHA256 = hex.EncodeToString(sum[:])
	if p.ID == "" {
		return nil, policyErr(raw.ID.Line, "id is required")
	}
	switch p.Default {
	case "":
		p.Default = Deny
	case Deny, Ask:
	case Allow:
		return nil, policyErr(raw.Default.Line, "default: allow is not permitted; name what is allowed in rules")
	default:
		return nil, policyErr(raw.Default.Line, "default must be deny or ask, got %q", raw.Default.Value)
	}
	seen := map[string]int{}
	for _, rr := range raw.Rules {
		r, err := buildRule(rr)
		if err != nil {
			return nil, err
		}
		if prev, dup := seen[r.ID]; dup {
			return nil, policyErr(rr.ID.Line, "duplicate rule id %q (first at line %d)", r.ID, prev)
		}
		seen[r.ID] = rr.ID.Line
		p.Rules = append(p.Rules, r)
	}
	return p, nil
}

func buildRule(rr rawRule) (Rule, error) {
	r := Rule{
		ID:            rr.ID.Value,
		Decision:      Verdict(rr.Decision.Value),
		Justification: rr.Justification.Value,
		Line:          rr.Line,
	}
	if r.ID == "" {
		return Rule{}, policyErr(rr.Line, "rule id is required")
	}
	switch r.Decision {
	case Allow, Ask, Deny:
	case "":
		return Rule{}, policyErr(rr.Line, "rule %q: decision is required (allow, ask or deny)", r.ID)
	default:
		return Rule{}, policyErr(rr.Decision.Line, "rule %q: decision must be allow, ask or deny, got %q", r.ID, rr.Decision.Value)
	}
	if len(rr.Hosts) == 0 && len(rr.CIDRs) == 0 {
		return Rule{}, policyErr(rr.Line, "rule %q: needs hosts or cidrs", r.ID)
	}
	for _, h := range rr.Hosts {
		name, err := parseRuleHost(h.Value)
		if err != nil {
			return Rule{}, policyErr(h.Line, "rule %q: host %q: %v", r.ID, h.Value, err)
		}
		r.Hosts = append(r.Hosts, name)
	}
	for _, c := range rr.CIDRs {
		p, err := parseRuleCIDR(c.Value)
		if err != nil {
			return Rule{}, policyErr(c.Line, "rule %q: cidr %q: %v", r.ID, c.Value, err)
		}
		r.CIDRs = append(r.CIDRs, p)
	}
	for _, s := range rr.Ports {
		pr, err := parsePortRange(s.Value)
		if err != nil {
			return Rule{}, policyErr(s.Line, "rule %q: port %q: %v", r.ID, s.Value, err)
		}
		r.Ports = append(r.Ports, pr)
	}
	if len(r.Ports) == 0 {
		r.Ports = defaultPorts
	}
	for _, m := range rr.Methods {
		if !isToken(m.Value) {
			return Rule{}, policyErr(m.Line, "rule %q: method %q is not an HTTP token", r.ID, m.Value)
		}
		r.Methods = append(r.Methods, strings.ToUpper(m.Value))
	}
	reason, err := ruleReason(r.Decision, rr.Reason.Value)
	if err != nil {
		return Rule{}, policyErr(rr.Reason.Line, "rule %q: %v", r.ID, err)
	}
	r.Reason = reason
	return r, nil
}

// ruleReason picks the reason code a rule's decisions carry; a rule may
// only choose among the codes that fit its verdict.
func ruleReason(v Verdict, given string) (string, error) {
	allowed := map[Verdict][]string{
		Allow: {ReasonAllowlisted, ReasonKnownSafe},
		Ask:   {ReasonNeedsApproval},
		Deny:  {ReasonDeniedByRule},
	}[v]
	if given == "" {
		return allowed[0], nil
	}
	if !slices.Contains(allowed, given) {
		return "", fmt.Errorf("reason %q does not fit decision %s (use one of %s)", given, v, strings.Join(allowed, ", "))
	}
	return given, nil
}

func parseRuleHost(s string) (string, error) {
	wild := strings.HasPrefix(s, "*.")
	if wild {
		s = s[2:]
	}
	if strings.ContainsRune(s, '*') {
		return "", errors.New("a wildcard may only be a leading \"*.\" label")
	}
	h, err := ParseHost(s)
	if err != nil {
		return "", err
	}
	if h.IsIP() {
		return "", errors.New("IP addresses belong in cidrs")
	}
	if wild {
		if !strings.Contains(h.Name, ".") {
			// "*.com" would allow a whole top-level domain.
			return "", errors.New("a wildcard needs at least two labels after \"*.\"")
		}
		return "*." + h.Name, nil
	}
	return h.Name, nil
}

// parseRuleCIDR accepts standard notation only ("10.0.0.0/8", "127.0.0.1",
// "fd00:ec2::254/128"). A prefix with host bits set is an error because
// it usually means the author meant something else.
func parseRuleCIDR(s string) (netip.Prefix, error) {
	var p netip.Prefix
	if strings.Contains(s, "/") {
		var err error
		if p, err = netip.ParsePrefix(s); err != nil {
			return netip.Prefix{}, err
		}
	} else {
		a, err := netip.ParseAddr(s)
		if err != nil {
			return netip.Prefix{}, err
		}
		if a.Zone() != "" {
			return netip.Prefix{}, errors.New("zones are not allowed")
		}
		p = netip.PrefixFrom(a, a.BitLen())
	}
	if p.Masked() != p {
		return netip.Prefix{}, fmt.Errorf("host bits set; did you mean %s?", p.Masked())
	}
	if p.Addr().Is4In6() {
		// Addresses are unmapped before matching, so match as IPv4. A
		// masked prefix keeps all of ::ffff only at /96 or longer.
		return netip.PrefixFrom(p.Addr().Unmap(), p.Bits()-96), nil
	}
	return p, nil
}

func parsePortRange(s string) (PortRange, error) {
	lo, hi, isRange := strings.Cut(s, "-")
	a, err := strconv.ParseUint(lo, 10, 16)
	if err != nil || a == 0 {
		return PortRange{}, errors.New("want a port 1-65535 or a range like 8000-8100")
	}
	b := a
	if isRange {
		if b, err = strconv.ParseUint(hi, 10, 16); err != nil || b < a {
			return PortRange{}, errors.New("want a range low-high with 1 <= low <= high <= 65535")
		}
	}
	return PortRange{uint16(a), uint16(b)}, nil
}

func isToken(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0 {
			continue
		}
		return false
	}
	return true
}

func (r *Rule) matchesHost(name string) bool {
	if name == "" {
		return false
	}
	for _, h := range r.Hosts {
		if suffix, wild := strings.CutPrefix(h, "*"); wild {
			if len(name) > len(suffix) && strings.HasSuffix(name, suffix) {
				return true
			}
		} else if h == name {
			return true
		}
	}
	return false
}

func (r *Rule) matchesAddr(a netip.Addr) bool {
	for _, p := range r.CIDRs {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

func (r *Rule) matchesPort(port uint16) bool {
	for _, pr := range r.Ports {
		if pr.Contains(port) {
			return true
		}
	}
	return false
}

// matchesMethod: see Rule.Methods for why an unknown method matches deny
// rules only.
func (r *Rule) matchesMethod(method string, known bool) bool {
	if len(r.Methods) == 0 {
		return true
	}
	if !known {
		return r.Decision == Deny
	}
	return slices.Contains(r.Methods, strings.ToUpper(method))
}

// liftsBlock reports whether the rule names a within-range CIDR for addr,
// i.e. a CIDR that contains addr and is no wider than its special range.
func (r *Rule) liftsBlock(a netip.Addr, c Class) bool {
	for _, p := range r.CIDRs {
		if p.Contains(a) && p.Bits() >= c.Range.Bits() && c.Range.Addr().BitLen() == p.Addr().BitLen() {
			return true
		}
	}
	return false
}

// decideByName decides a name request that no resolved address could
// change, before any lookup: a deny rule naming the host, or a name only
// the default would decide. The proxy then never sends that name to DNS,
// which matters because a lookup of a sandbox-chosen name is itself an
// exfiltration channel ("secret.attacker.example").
func (p *Policy) decideByName(name string, port uint16, method string, methodKnown bool) (Verdict, string, string, bool) {
	nameMatched, addrRules := false, false
	for i := range p.Rules {
		r := &p.Rules[i]
		if !r.matchesPort(port) || !r.matchesMethod(method, methodKnown) {
			continue
		}
		if r.matchesHost(name) {
			if r.Decision == Deny {
				return Deny, r.Reason, r.ID, true
			}
			nameMatched = true
		}
		if r.Decision != Deny && len(r.CIDRs) > 0 {
			addrRules = true
		}
	}
	if !nameMatched && !addrRules && p.Default == Deny {
		return Deny, ReasonDefaultDeny, "", true
	}
	return "", "", "", false
}

// verdictFor decides one address. name is "" for an IP-literal host.
func (p *Policy) verdictFor(name string, a netip.Addr, port uint16, method string, methodKnown bool) (Verdict, string, string) {
	var matched []*Rule
	for i := range p.Rules {
		r := &p.Rules[i]
		if r.matchesPort(port) && r.matchesMethod(method, methodKnown) && (r.matchesHost(name) || r.matchesAddr(a)) {
			matched = append(matched, r)
		}
	}
	if c := Classify(a); c.Reason != "" {
		lifted := slices.ContainsFunc(matched, func(r *Rule) bool {
			return r.Decision != Deny && r.liftsBlock(a, c)
		})
		if !lifted {
			return Deny, c.Reason, ""
		}
	}
	for _, v := range []Verdict{Deny, Ask, Allow} {
		for _, r := range matched {
			if r.Decision == v {
				return v, r.Reason, r.ID
			}
		}
	}
	if p.Default == Ask {
		return Ask, ReasonNeedsApproval, ""
	}
	return Deny, ReasonDefaultDeny, ""
}
