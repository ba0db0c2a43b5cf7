package approvals

import (
	"crypto/ed25519"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"fmt"
	"math/big"
	"strings"
	"testing"
	"time"

	"github.com/agentaudit/agentaudit/internal/approvals/signing"
	"github.com/agentaudit/agentaudit/internal/events"
	"github.com/google/go-cmp/cmp"
)

// Tokens of the test approvers; the config holds only their hashes.
var tokens = map[string]string{
	"alice": "tok-alice", "bob": "tok-bob", "rel": "tok-rel", "carol": "tok-carol",
	requesterA: "tok-agent", "nogroup": "tok-nogroup",
}

func testConfig(extra string) string {
	var b strings.Builder
	b.WriteString("approvers:\n")
	for _, a := range []struct{ id, groups string }{
		{"alice", "[oncall]"}, {"bob", "[oncall]"}, {"rel", "[release]"}, {"carol", "[release, oncall]"},
		{requesterA, "[oncall, release]"}, {"nogroup", "[]"},
	} {
		fmt.Fprintf(&b, "  - id: %s\n    name: %s Example\n    groups: %s\n    token_sha256: %s\n", a.id, a.id, a.groups, HashToken(tokens[a.id]))
	}
	b.WriteString(`groups:
  - name: oncall
    may_answer:
      - kinds: [tool_call, egress]
        max_risk: high
  - name: release
    may_answer:
      - rule_ids: ["deploy-*"]
restricted:
  - match: {rule_ids: ["deploy-*"]}
    groups: [release]
two_person:
  - kinds: [session_hold]
  - rule_ids: ["deploy-prod*"]
    min_risk: critical
`)
	b.WriteString(extra)
	return b.String()
}

func newAuth(t *testing.T, clk *clock, opts ...AuthOption) *Authenticator {
	t.Helper()
	cfg, err := ParseConfig([]byte(testConfig("")))
	if err != nil {
		t.Fatal(err)
	}
	a, err := NewAuthenticator(cfg, append([]AuthOption{WithAuthClock(clk.now)}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

func TestAuthenticate(t *testing.T) {
	a := newAuth(t, newClock(t0))
	for _, c := range []struct {
		bearer string
		want   string
		code   signing.Code
	}{
		{"tok-alice", "alice", ""},
		{"tok-carol", "carol", ""},
		{"tok-alice ", "", CodeUnauthenticated},
		{"TOK-ALICE", "", CodeUnauthenticated},
		{HashToken("tok-alice"), "", CodeUnauthenticated}, // the stored hash is not a credential
		{"", "", CodeUnauthenticated},
	} {
		ap, err := a.Authenticate(c.bearer)
		if signing.CodeOf(err) != c.code || ap.ID != c.want {
			t.Errorf("Authenticate(%q) = %q, %v; want %q, code %q", c.bearer, ap.ID, err, c.want, c.code)
		}
	}
	ap, _ := a.Authenticate("tok-carol")
	if diff := cmp.Diff(Approver{ID: "carol", Name: "carol Example", Groups: []string{"release", "oncall"}}, ap); diff != "" {
		t.Errorf("approver (-want +got):\n%s", diff)
	}
}

// TestAuthenticateComparesEveryEntry: whichever entry matches, or none, the
// lookup compares the presented hash with every stored one.
func TestAuthenticateComparesEveryEntry(t *testing.T) {
	a := newAuth(t, newClock(t0))
	calls := 0
	orig := constantTimeCompare
	constantTimeCompare = func(x, y []byte) int { calls++; return orig(x, y) }
	t.Cleanup(func() { constantTimeCompare = orig })
	for _, bearer := range []string{"tok-alice", "tok-nogroup", "wrong", ""} {
		calls = 0
		_, _ = a.Authenticate(bearer)
		if calls != len(a.tokens) {
			t.Errorf("Authenticate(%q) compared %d of %d entries", bearer, calls, len(a.tokens))
		}
	}
}

func TestAuthenticateRateLimit(t *testing.T) {
	clk := newClock(t0)
	var failures []AuthFailure
	a := newAuth(t, clk, WithLimiter(NewLimiter(3, time.Minute, 100, clk.now)),
		WithOnFailure(func(f AuthFailure) { failures = append(failures, f) }))
	from := "192.0.2.7:51000"
	for i := range 3 {
		if _, err := a.AuthenticateFrom(from, "guess"); !errors.Is(err, ErrUnauthenticated) {
			t.Fatalf("failure %d: %v", i, err)
		}
	}
	// Locked out: even the right token is not looked at.
	if _, err := a.AuthenticateFrom("192.0.2.7:51001", "tok-alice"); !errors.Is(err, ErrRateLimited) {
		t.Fatalf("after 3 failures: %v, want ErrRateLimited", err)
	}
	// Other addresses are unaffected.
	if ap, err := a.AuthenticateFrom("198.51.100.1:4000", "tok-alice"); err != nil || ap.ID != "alice" {
		t.Fatalf("other address: %v %v", ap, err)
	}
	clk.add(time.Minute)
	if ap, err := a.AuthenticateFrom(from, "tok-alice"); err != nil || ap.ID != "alice" {
		t.Fatalf("after refill: %v %v", ap, err)
	}
	// Successes cost nothing: the refilled token is still there.
	if _, err := a.AuthenticateFrom(from, "guess"); !errors.Is(err, ErrUnauthenticated) {
		t.Fatalf("one failure after refill: %v", err)
	}
	if _, err := a.AuthenticateFrom(from, "tok-alice"); !errors.Is(err, ErrRateLimited) {
		t.Fatalf("empty bucket again: %v", err)
	}
	want := []AuthFailure{
		{from, CodeUnauthenticated, t0}, {from, CodeUnauthenticated, t0}, {from, CodeUnauthenticated, t0},
		{"192.0.2.7:51001", CodeRateLimited, t0},
		{from, CodeUnauthenticated, t0.Add(time.Minute)}, {from, CodeRateLimited, t0.Add(time.Minute)},
	}
	if diff := cmp.Diff(want, failures); diff != "" {
		t.Errorf("recorded failures (-want +got):\n%s", diff)
	}
	if f, l := a.Stats().Failures.Load(), a.Stats().Limited.Load(); f != 4 || l != 2 {
		t.Errorf("stats failures=%d limited=%d, want 4 2", f, l)
	}
}

func TestLimiterKeysAndBounds(t *testing.T) {
	clk := newClock(t0)
	l := NewLimiter(2, time.Minute, 4, clk.now)
	// One IPv6 /64 is one unit; IPv4-mapped addresses are IPv4.
	l.Fail("[2001:db8:1:2::1]:443")
	l.Fail("[2001:db8:1:2:ffff::9]:80")
	if l.Allow("[2001:db8:1:2::77]:1") {
		t.Error("same /64 not limited together")
	}
	if !l.Allow("[2001:db8:1:3::1]:1") {
		t.Error("another /64 limited")
	}
	l.Fail("[::ffff:192.0.2.1]:1")
	l.Fail("192.0.2.1:2")
	if l.Allow("192.0.2.1") {
		t.Error("IPv4-mapped and IPv4 not the same unit")
	}
	// A flood from many addresses never grows the table past its bound and
	// ends up sharing the overflow bucket.
	for i := range 1000 {
		l.Fail(fmt.Sprintf("203.0.113.%d:1", i%250))
		l.Fail(fmt.Sprintf("10.%d.%d.1:1", i/256, i%256))
	}
	if n := l.Len(); n > 4 {
		t.Errorf("limiter holds %d addresses, bound 4", n)
	}
	if l.Allow("10.200.200.200:1") {
		t.Error("a new address escaped the exhausted overflow bucket")
	}
	// Once buckets refill they are swept, and new addresses get their own.
	clk.add(time.Hour)
	if !l.Allow("10.200.200.200:1") {
		t.Error("new address refused after everything refilled")
	}
	l.Fail("10.200.200.200:1")
	if n := l.Len(); n != 1 {
		t.Errorf("after sweep the limiter holds %d addresses, want 1", n)
	}
}

func TestAuthenticateCert(t *testing.T) {
	cert := selfSigned(t)
	cfg, err := ParseConfig([]byte(testConfig("") + ""))
	if err != nil {
		t.Fatal(err)
	}
	cfg.Approvers = append(cfg.Approvers, ApproverConfig{ID: "dave", Groups: []string{"oncall"}, CertSHA256: HashToken(string(cert.Raw))})
	a, err := NewAuthenticator(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if ap, err := a.AuthenticateCert("192.0.2.9:1", cert); err != nil || ap.ID != "dave" {
		t.Fatalf("AuthenticateCert = %v %v, want dave", ap, err)
	}
	if _, err := a.AuthenticateCert("192.0.2.9:1", selfSigned(t)); !errors.Is(err, ErrUnauthenticated) {
		t.Fatalf("unknown certificate: %v", err)
	}
	if _, err := a.AuthenticateCert("192.0.2.9:1", nil); !errors.Is(err, ErrUnauthenticated) {
		t.Fatalf("no certificate: %v", err)
	}
}

func selfSigned(t *testing.T) *x509.Certificate {
	t.Helper()
	pub, priv, _ := ed25519.GenerateKey(rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "dave"},
		NotBefore: t0, NotAfter: t0.Add(time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, pub, priv)
	if err != nil {
		t.Fatal(err)
	}
	c, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestAuthorize(t *testing.T) {
	clk := newClock(t0.Add(time.Minute))
	a := newAuth(t, clk)
	approver := func(id string) Approver {
		ap, err := a.Authenticate(tokens[id])
		if err != nil {
			t.Fatal(err)
		}
		return ap
	}
	req := func(f func(*Request)) Request { r := pendingRequest("1001"); r.RuleID = "git-push"; f(&r); return r }
	none := func(*Request) {}
	cases := []struct {
		name string
		who  string
		r    Request
		want signing.Code
	}{
		{"oncall answers a tool call", "alice", req(none), ""},
		{"requester may not answer its own request", requesterA, req(none), CodeSelfApproval},
		{"oncall may not answer a deploy", "alice", req(func(r *Request) { r.RuleID = "deploy-prod" }), CodeWrongGroup},
		{"release answers a deploy", "rel", req(func(r *Request) { r.RuleID = "deploy-prod" }), ""},
		{"release may not answer other rules", "rel", req(none), CodeWrongGroup},
		{"member of both answers both", "carol", req(func(r *Request) { r.RuleID = "deploy-staging" }), ""},
		{"oncall limited to high risk", "alice", req(func(r *Request) { r.Risk = events.RiskCritical }), CodeWrongGroup},
		{"unknown risk is above every max_risk", "alice", req(func(r *Request) { r.Risk = "extreme" }), CodeWrongGroup},
		{"oncall may not answer a session hold", "alice", req(func(r *Request) { r.Kind = events.ApprovalKindSessionHold }), CodeWrongGroup},
		{"no group, no answer", "nogroup", req(none), CodeWrongGroup},
		{"already decided", "alice", req(func(r *Request) {
			r.Status, r.Final = StatusDenied, &Decision{Outcome: events.ApprovalDenied}
		}), CodeAlreadyDecided},
		{"expired by ExpireDue", "alice", req(func(r *Request) { r.Status = StatusExpired }), signing.CodeExpired},
		{"past the deadline", "alice", req(func(r *Request) { r.ExpiresAt = t0 }), signing.CodeExpired},
		{"first approver again", "alice", req(func(r *Request) {
			r.Approvals = []Decision{{Approver: events.Actor{Type: events.ActorHuman, ID: "alice"}}}
		}), CodeDuplicateApprover},
		{"no approver", "", req(none), CodeUnauthenticated},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var ap Approver
			if c.who != "" {
				ap = approver(c.who)
			}
			if got := signing.CodeOf(a.Authorize(ap, c.r)); got != c.want {
				t.Errorf("Authorize(%s) code %q, want %q", c.who, got, c.want)
			}
		})
	}
}

// TestTwoPersonEndToEnd runs a critical deploy through Answer, Sign, the
// fold and a runner's ReplayGuard.
func TestTwoPersonEndToEnd(t *testing.T) {
	clk := newClock(t0.Add(time.Minute))
	a := newAuth(t, clk)
	s, pub := mustKey(t, "k1")
	ks := mustKeySet(t, []signing.PublicKey{pub}, t0)
	guard := signing.NewReplayGuard(clk.now)
	st := NewState(WithVerifier(ks))
	reqEnv := requestEnv(t, "1001", func(p *events.ApprovalRequested) { p.Risk = events.RiskCritical })
	if _, err := st.Apply(reqEnv); err != nil {
		t.Fatal(err)
	}
	runnerRef := refOf(t, reqEnv) // what the runner knows of its own request
	rel, _ := a.Authenticate("tok-rel")
	carol, _ := a.Authenticate("tok-carol")

	n := 2000
	answer := func(ap Approver, outcome events.ApprovalOutcome, scope events.ApprovalScope) (*events.Envelope, error) {
		r, _ := st.Get("1001")
		d, err := a.Answer(ap, r, outcome, scope, "")
		if err != nil {
			return nil, err
		}
		n++
		env := signed(t, s, r.Ref(), fmt.Sprint(n), d)
		if _, err := st.Apply(env); err != nil {
			t.Fatal(err)
		}
		return env, nil
	}

	r, _ := st.Get("1001")
	if got := a.RequiredApprovals(r); got != 2 {
		t.Fatalf("RequiredApprovals = %d, want 2", got)
	}
	first, err := answer(rel, events.ApprovalApproved, events.ScopeSession)
	if err != nil {
		t.Fatal(err)
	}
	if r, _ := st.Get("1001"); r.Status != StatusPending || len(r.Approvals) != 1 {
		t.Fatalf("after the first approval: %s with %d approvals, want pending with 1", r.Status, len(r.Approvals))
	}
	if _, err := guard.Accept(ks, first, runnerRef); !errors.Is(err, signing.ErrPartial) {
		t.Fatalf("runner accepted a partial approval: %v", err)
	}
	if _, err := answer(rel, events.ApprovalApproved, events.ScopeOnce); !errors.Is(err, ErrDuplicateApprover) {
		t.Fatalf("same approver twice: %v", err)
	}
	if _, err := answer(carol, events.ApprovalApproved, "forever"); !errors.Is(err, signing.ErrScopeNotOffered) {
		t.Fatalf("scope not on offer: %v", err)
	}
	clk.add(time.Minute)
	final, err := answer(carol, events.ApprovalApproved, events.ScopeOnce)
	if err != nil {
		t.Fatal(err)
	}
	d, err := guard.Accept(ks, final, runnerRef)
	if err != nil {
		t.Fatalf("runner refused the final approval: %v", err)
	}
	// The final scope is the narrower of the two approvers' (session, once).
	if d.Scope != events.ScopeOnce || d.ReasonCode != events.ReasonApproved || d.Approver.ID != "carol" {
		t.Errorf("final decision %+v, want once/approved by carol", d)
	}
	if r, _ := st.Get("1001"); r.Status != StatusApproved {
		t.Errorf("state %s, want approved", r.Status)
	}
	if _, err := answer(carol, events.ApprovalDenied, ""); !errors.Is(err, ErrAlreadyDecided) {
		t.Errorf("answer after the final decision: %v", err)
	}
	if _, err := guard.Accept(ks, final, runnerRef); !errors.Is(err, signing.ErrReplay) {
		t.Errorf("replayed final decision: %v", err)
	}
}

func TestAnswerSingleApprover(t *testing.T) {
	clk := newClock(t0.Add(time.Minute))
	a := newAuth(t, clk)
	r := pendingRequest("1001")
	r.RuleID = "git-push"
	alice, _ := a.Authenticate("tok-alice")
	for _, c := range []struct {
		outcome events.ApprovalOutcome
		scope   events.ApprovalScope
		want    events.ApprovalDecided
		code    signing.Code
	}{
		{events.ApprovalApproved, events.ScopeSession, events.ApprovalDecided{Decision: events.ApprovalApproved,
			ReasonCode: events.ReasonApprovedForSession, Scope: events.ScopeSession}, ""},
		{events.ApprovalApproved, events.ScopeOnce, events.ApprovalDecided{Decision: events.ApprovalApproved,
			ReasonCode: events.ReasonApproved, Scope: events.ScopeOnce}, ""},
		{events.ApprovalDenied, "", events.ApprovalDecided{Decision: events.ApprovalDenied,
			ReasonCode: events.ReasonApprovalDenied}, ""},
		{events.ApprovalExpired, "", events.ApprovalDecided{}, signing.CodeInvalidDecision},
	} {
		got, err := a.Answer(alice, r, c.outcome, c.scope, "")
		if signing.CodeOf(err) != c.code {
			t.Errorf("%s: code %q, want %q (%v)", c.outcome, signing.CodeOf(err), c.code, err)
			continue
		}
		if c.code == "" {
			c.want.Approver, c.want.DecidedAt = alice.Actor(), events.At(clk.t)
		}
		if diff := cmp.Diff(c.want, got); diff != "" {
			t.Errorf("%s %s (-want +got):\n%s", c.outcome, c.scope, diff)
		}
	}
}

func TestParseConfigErrors(t *testing.T) {
	good := testConfig("")
	if _, err := ParseConfig([]byte(good)); err != nil {
		t.Fatalf("good config: %v", err)
	}
	h := HashToken("x")
	for name, doc := range map[string]string{
		"unknown field":         good + "approverz: []\n",
		"misspelt group field":  strings.Replace(good, "may_answer:", "may_answr:", 1),
		"unknown group":         "approvers:\n  - {id: a, groups: [nope], token_sha256: " + h + "}\n",
		"duplicate approver":    "approvers:\n  - {id: a, token_sha256: " + h + "}\n  - {id: a, token_sha256: " + HashToken("y") + "}\n",
		"shared token":          "approvers:\n  - {id: a, token_sha256: " + h + "}\n  - {id: b, token_sha256: " + h + "}\n",
		"short hash":            "approvers:\n  - {id: a, token_sha256: abc}\n",
		"not hex":               "approvers:\n  - {id: a, token_sha256: " + strings.Repeat("z", 64) + "}\n",
		"hash of empty token":   "approvers:\n  - {id: a, token_sha256: " + HashToken("") + "}\n",
		"no credential":         "approvers:\n  - {id: a}\n",
		"empty id":              "approvers:\n  - {id: '', token_sha256: " + h + "}\n",
		"id with space":         "approvers:\n  - {id: 'a b', token_sha256: " + h + "}\n",
		"group answers nothing": "groups:\n  - {name: g}\n",
		"bad kind":              "groups:\n  - {name: g, may_answer: [{kinds: [deploy]}]}\n",
		"bad risk":              "groups:\n  - {name: g, may_answer: [{max_risk: huge}]}\n",
		"min above max":         "groups:\n  - {name: g, may_answer: [{min_risk: high, max_risk: low}]}\n",
		"bad pattern":           "groups:\n  - {name: g, may_answer: [{rule_ids: ['[']}]}\n",
		"restriction no group":  "restricted:\n  - {match: {kinds: [egress]}}\n",
		"two_person bad kind":   "two_person:\n  - {kinds: [nope]}\n",
		"empty":                 "",
		"not yaml":              "approvers: [",
	} {
		if _, err := ParseConfig([]byte(doc)); !errors.Is(err, ErrConfig) {
			t.Errorf("%s: ParseConfig = %v, want ErrConfig", name, err)
		}
	}
}

func FuzzParseConfig(f *testing.F) {
	f.Add([]byte(testConfig("")))
	f.Add([]byte("approvers:\n  - {id: a, groups: [g], token_sha256: " + HashToken("x") + "}\ngroups:\n  - {name: g, may_answer: [{}]}\n"))
	f.Add([]byte("two_person:\n  - {rule_ids: ['deploy-*'], min_risk: high}\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		cfg, err := ParseConfig(data)
		if err != nil {
			if !errors.Is(err, ErrConfig) {
				t.Fatalf("error not ErrConfig: %v", err)
			}
			return
		}
		a, err := NewAuthenticator(cfg)
		if err != nil {
			t.Fatalf("validated config refused by NewAuthenticator: %v", err)
		}
		// Whatever the config says, nobody authenticates with an empty
		// token or approves their own request.
		if _, err := a.Authenticate(""); err == nil {
			t.Fatal("empty token authenticated")
		}
		for _, ac := range cfg.Approvers {
			r := pendingRequest("1001")
			r.Requester.ID = ac.ID
			r.ExpiresAt = time.Now().Add(time.Hour)
			if err := a.Authorize(Approver{ID: ac.ID, Groups: ac.Groups}, r); !errors.Is(err, ErrSelfApproval) {
				t.Fatalf("self-approval by %q: %v", ac.ID, err)
			}
		}
	})
}
