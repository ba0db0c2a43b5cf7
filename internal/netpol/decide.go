package netpol

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"time"
)

// ErrResolve means a host name did not resolve to any address.
var ErrResolve = errors.New("netpol: name did not resolve")

// SchemeHTTP marks a plain-HTTP forward request, the only kind whose
// method the proxy can see and Rule.Methods can check.
const SchemeHTTP = "http"

// Request is one destination the sandbox asked for.
type Request struct {
	// Host as received: a name or an IP literal in any spelling, with or
	// without brackets; Decide parses and normalises it.
	Host string
	Port uint16
	// Method is consulted only when Scheme is SchemeHTTP.
	Method string
	// Scheme is SchemeHTTP for an absolute-URI request, anything else
	// (e.g. "https" for CONNECT) when the method is not visible.
	Scheme string
}

// Decision is the outcome of checking a Request.
type Decision struct {
	Verdict Verdict
	Reason  string // shared reason code
	RuleID  string // the rule that decided, "" for range blocks and defaults
	Host    string // normalised host name, or the canonical IP
	Port    uint16
	// Addrs are the addresses that were checked, in resolver order. After
	// Allow (or an approved Ask) the proxy dials only these, never the
	// name again, so DNS cannot change the answer between check and dial.
	// Nil when the host was decided by name alone, without a lookup.
	Addrs []netip.Addr
	// DeniedAddr is the address that caused a Deny, when one did.
	DeniedAddr   netip.Addr
	PolicyID     string
	PolicySHA256 string
}

// Resolver looks up host names; *net.Resolver satisfies it.
type Resolver interface {
	LookupNetIP(ctx context.Context, network, host string) ([]netip.Addr, error)
}

// Decider applies a Policy to requests, resolving names itself.
type Decider struct {
	policy   *Policy
	resolver Resolver
	log      *slog.Logger
	timeout  time.Duration
}

// Option configures a Decider.
type Option func(*Decider)

// WithResolver sets the resolver; the default is net.DefaultResolver.
func WithResolver(r Resolver) Option { return func(d *Decider) { d.resolver = r } }

// WithLogger sets the logger; the default discards.
func WithLogger(l *slog.Logger) Option { return func(d *Decider) { d.log = l } }

// WithResolveTimeout bounds each name lookup; the default is 5s.
func WithResolveTimeout(t time.Duration) Option { return func(d *Decider) { d.timeout = t } }

// NewDecider returns a Decider for p.
func NewDecider(p *Policy, opts ...Option) *Decider {
	d := &Decider{
		policy:   p,
		resolver: net.DefaultResolver,
		log:      slog.New(slog.DiscardHandler),
		timeout:  5 * time.Second,
	}
	for _, o := range opts {
		o(d)
	}
	return d
}

// Policy returns the policy the Decider applies.
func (d *Decider) Policy() *Policy { return d.policy }

// Resolve returns the addresses for host: the address itself for an IP
// literal (never looked up), else the resolver's answer, unmapped,
// zone-free and de-duplicated in resolver order. The name is looked up as
// an absolute name (trailing dot) so resolv.conf search domains cannot
// turn "metadata" into "metadata.internal.corp".
func (d *Decider) Resolve(ctx context.Context, host string) ([]netip.Addr, error) {
	h, err := ParseHost(host)
	if err != nil {
		return nil, err
	}
	return d.resolve(ctx, h)
}

func (d *Decider) resolve(ctx context.Context, h Host) ([]netip.Addr, error) {
	if h.IsIP() {
		return []netip.Addr{h.Addr}, nil
	}
	if d.timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, d.timeout)
		defer cancel()
	}
	got, err := d.resolver.LookupNetIP(ctx, "ip", h.Name+".")
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %w", ErrResolve, h.Name, err)
	}
	out := make([]netip.Addr, 0, len(got))
	for _, a := range got {
		if !a.IsValid() {
			continue
		}
		a = a.WithZone("").Unmap()
		if !contains(out, a) {
			out = append(out, a)
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("%w: %s: no addresses", ErrResolve, h.Name)
	}
	return out, nil
}

func contains(as []netip.Addr, a netip.Addr) bool {
	for _, b := range as {
		if a == b {
			return true
		}
	}
	return false
}

// Decide checks req: it parses the host, resolves a name, and checks every
// address (see Policy.Evaluate). A name that a deny rule names, or that
// only the default would decide, is denied without a lookup. A name that
// does not resolve is denied with dns_failure; a malformed host or port
// with bad_request.
func (d *Decider) Decide(ctx context.Context, req Request) Decision {
	h, err := ParseHost(req.Host)
	if err != nil {
		return d.policy.stamp(Decision{Verdict: Deny, Reason: ReasonBadRequest, Port: req.Port})
	}
	if req.Port == 0 {
		// Checked before resolving so a malformed request causes no lookup.
		return d.policy.stamp(Decision{Verdict: Deny, Reason: ReasonBadRequest, Host: h.String()})
	}
	if !h.IsIP() {
		if v, reason, rule, ok := d.policy.decideByName(h.Name, req.Port, req.Method, req.Scheme == SchemeHTTP); ok {
			return d.policy.stamp(Decision{Verdict: v, Reason: reason, RuleID: rule, Host: h.Name, Port: req.Port})
		}
	}
	addrs, err := d.resolve(ctx, h)
	if err != nil {
		d.log.DebugContext(ctx, "egress name did not resolve", "host", h.Name, "err", err)
		return d.policy.stamp(Decision{Verdict: Deny, Reason: ReasonDNSFailure, Host: h.String(), Port: req.Port})
	}
	return d.policy.evaluate(h, addrs, req)
}

// Evaluate decides req against addrs without resolving anything: addrs are
// what req.Host resolved to (ignored for an IP-literal host, which is its
// own address). A name denied by a host rule, or decided by the default
// alone, is denied before addrs are looked at. Every address is checked;
// if any is denied — a blocked special range, a deny rule, or no matching
// rule — the request is denied with that address's reason, otherwise Ask
// wins over Allow. A Decision with Verdict Allow carries the addresses to
// dial.
func (p *Policy) Evaluate(req Request, addrs []netip.Addr) Decision {
	h, err := ParseHost(req.Host)
	if err != nil {
		return p.stamp(Decision{Verdict: Deny, Reason: ReasonBadRequest, Port: req.Port})
	}
	if h.IsIP() {
		addrs = []netip.Addr{h.Addr}
	}
	return p.evaluate(h, addrs, req)
}

func (p *Policy) evaluate(h Host, addrs []netip.Addr, req Request) Decision {
	d := Decision{Host: h.String(), Port: req.Port}
	if req.Port == 0 {
		d.Verdict, d.Reason = Deny, ReasonBadRequest
		return p.stamp(d)
	}
	methodKnown := req.Scheme == SchemeHTTP
	if !h.IsIP() {
		if v, reason, rule, ok := p.decideByName(h.Name, req.Port, req.Method, methodKnown); ok {
			d.Verdict, d.Reason, d.RuleID = v, reason, rule
			return p.stamp(d)
		}
	}
	if len(addrs) == 0 {
		d.Verdict, d.Reason = Deny, ReasonDNSFailure
		return p.stamp(d)
	}
	d.Addrs = make([]netip.Addr, 0, len(addrs))
	for _, a := range addrs {
		d.Addrs = append(d.Addrs, a.WithZone("").Unmap())
	}
	var ask, allow *Decision
	for _, a := range d.Addrs {
		v, reason, rule := p.verdictFor(h.Name, a, req.Port, req.Method, methodKnown)
		switch v {
		case Deny:
			d.Verdict, d.Reason, d.RuleID, d.DeniedAddr = Deny, reason, rule, a
			return p.stamp(d)
		case Ask:
			if ask == nil {
				ask = &Decision{Verdict: v, Reason: reason, RuleID: rule}
			}
		case Allow:
			if allow == nil {
				allow = &Decision{Verdict: v, Reason: reason, RuleID: rule}
			}
		}
	}
	pick := allow
	if ask != nil {
		pick = ask
	}
	d.Verdict, d.Reason, d.RuleID = pick.Verdict, pick.Reason, pick.RuleID
	return p.stamp(d)
}

func (p *Policy) stamp(d Decision) Decision {
	d.PolicyID, d.PolicySHA256 = p.ID, p.SHA256
	return d
}
