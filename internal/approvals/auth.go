package approvals

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"slices"
	"sync/atomic"
	"time"

	"github.com/agentaudit/agentaudit/internal/approvals/signing"
	"github.com/agentaudit/agentaudit/internal/events"
)

// Approver is an authenticated approver.
type Approver struct {
	ID     string
	Name   string
	Groups []string
}

// Actor returns the approver as an event actor.
func (a Approver) Actor() events.Actor { return events.Actor{Type: events.ActorHuman, ID: a.ID} }

// AuthFailure describes a refused authentication, for the caller to record
// (as a log line, a metric or an event). It never holds the credential.
type AuthFailure struct {
	Remote string
	Code   signing.Code // CodeUnauthenticated or CodeRateLimited
	At     time.Time
}

// AuthStats counts refused authentications.
type AuthStats struct {
	Failures atomic.Uint64 // credential matched no approver
	Limited  atomic.Uint64 // refused by the rate limiter without checking
}

// Authenticator authenticates approvers by bearer token or client
// certificate and authorizes them for requests, from a Config.
type Authenticator struct {
	cfg       *Config
	approvers []Approver
	tokens    []credential
	certs     []credential
	limiter   *Limiter
	now       func() time.Time
	onFailure func(AuthFailure)
	stats     AuthStats
}

type credential struct {
	hash     [32]byte
	approver int
}

// AuthOption configures an Authenticator.
type AuthOption func(*Authenticator)

// WithAuthClock sets the clock used for expiry and rate limiting.
func WithAuthClock(now func() time.Time) AuthOption { return func(a *Authenticator) { a.now = now } }

// WithLimiter replaces the default failure limiter (5 failures per address,
// then one per 12 s, 10 000 addresses).
func WithLimiter(l *Limiter) AuthOption { return func(a *Authenticator) { a.limiter = l } }

// WithOnFailure calls f for every refused authentication.
func WithOnFailure(f func(AuthFailure)) AuthOption { return func(a *Authenticator) { a.onFailure = f } }

// NewAuthenticator returns an Authenticator for cfg, which must have come
// from ParseConfig or LoadConfig (or pass their validation).
func NewAuthenticator(cfg *Config, opts ...AuthOption) (*Authenticator, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	a := &Authenticator{cfg: cfg, now: time.Now}
	for i, ac := range cfg.Approvers {
		a.approvers = append(a.approvers, Approver{ID: ac.ID, Name: ac.Name, Groups: slices.Clone(ac.Groups)})
		if ac.TokenSHA256 != "" {
			h, _ := parseHash(ac.TokenSHA256) // validated above
			a.tokens = append(a.tokens, credential{hash: h, approver: i})
		}
		if ac.CertSHA256 != "" {
			h, _ := parseHash(ac.CertSHA256)
			a.certs = append(a.certs, credential{hash: h, approver: i})
		}
	}
	for _, o := range opts {
		o(a)
	}
	if a.limiter == nil {
		a.limiter = NewLimiter(5, 12*time.Second, 10000, a.now)
	}
	return a, nil
}

// Stats returns the authenticator's counters.
func (a *Authenticator) Stats() *AuthStats { return &a.stats }

// constantTimeCompare is subtle.ConstantTimeCompare; tests wrap it to count
// that every stored credential is compared.
var constantTimeCompare = subtle.ConstantTimeCompare

// lookup finds the credential whose hash is sum. It compares sum with every
// stored hash and selects without branching, so the time taken does not
// tell which entry (or whether any) matched.
func lookup(creds []credential, sum [32]byte) int {
	match := -1
	for i := range creds {
		eq := constantTimeCompare(sum[:], creds[i].hash[:])
		match = subtle.ConstantTimeSelect(eq, creds[i].approver, match)
	}
	return match
}

// Authenticate returns the approver whose token_sha256 is the sha256 of
// bearer (the token without the "Bearer " prefix), or ErrUnauthenticated.
// It applies no rate limit; servers use AuthenticateFrom.
func (a *Authenticator) Authenticate(bearer string) (Approver, error) {
	i := lookup(a.tokens, sha256.Sum256([]byte(bearer)))
	if i < 0 || bearer == "" {
		return Approver{}, fail(CodeUnauthenticated, "unknown token")
	}
	return a.approver(i), nil
}

// AuthenticateFrom is Authenticate for a request from remote ("ip:port"):
// an address that has failed too often is refused with ErrRateLimited
// before its token is looked at, and every failure is counted, reported to
// the WithOnFailure hook and charged to the address.
func (a *Authenticator) AuthenticateFrom(remote, bearer string) (Approver, error) {
	return a.limited(remote, func() (Approver, error) { return a.Authenticate(bearer) })
}

// AuthenticateCert returns the approver whose cert_sha256 is the sha256 of
// the client certificate's DER bytes. The TLS layer must already have
// verified the certificate chain; this maps a verified certificate to an
// approver. Failures are limited like AuthenticateFrom's.
func (a *Authenticator) AuthenticateCert(remote string, cert *x509.Certificate) (Approver, error) {
	return a.limited(remote, func() (Approver, error) {
		if cert == nil {
			return Approver{}, fail(CodeUnauthenticated, "no client certificate")
		}
		i := lookup(a.certs, sha256.Sum256(cert.Raw))
		if i < 0 {
			return Approver{}, fail(CodeUnauthenticated, "unknown client certificate")
		}
		return a.approver(i), nil
	})
}

func (a *Authenticator) limited(remote string, auth func() (Approver, error)) (Approver, error) {
	if !a.limiter.Allow(remote) {
		a.stats.Limited.Add(1)
		a.report(remote, CodeRateLimited)
		return Approver{}, fail(CodeRateLimited, "from %s", addrKey(remote))
	}
	ap, err := auth()
	if err != nil {
		a.limiter.Fail(remote)
		a.stats.Failures.Add(1)
		a.report(remote, CodeUnauthenticated)
		return Approver{}, err
	}
	return ap, nil
}

func (a *Authenticator) report(remote string, c signing.Code) {
	if a.onFailure != nil {
		a.onFailure(AuthFailure{Remote: remote, Code: c, At: a.now()})
	}
}

func (a *Authenticator) approver(i int) Approver {
	ap := a.approvers[i]
	ap.Groups = slices.Clone(ap.Groups)
	return ap
}

// Authorize decides whether ap may answer r now. It refuses, in this
// order: a request already decided (ErrAlreadyDecided) or past its deadline
// (ErrExpired); the requester answering its own request (ErrSelfApproval);
// an approver none of whose groups may answer r, or who is outside the
// groups a restriction reserves r to (ErrWrongGroup); and an approver who
// already gave the first of two approvals (ErrDuplicateApprover). Default
// deny: an approver in no group may answer nothing.
func (a *Authenticator) Authorize(ap Approver, r Request) error {
	now := a.now()
	switch {
	case r.Open() && r.Status == StatusExpired: // marked by ExpireDue, its event on the way
		return fail(signing.CodeExpired, "request %s expired at %s", r.ID, stampOf(r.ExpiresAt))
	case r.Final != nil:
		return fail(CodeAlreadyDecided, "request %s was already %s", r.ID, wonBy(*r.Final))
	case r.Status != StatusPending:
		return fail(CodeAlreadyDecided, "request %s is %s", r.ID, r.Status)
	case now.After(r.ExpiresAt):
		return fail(signing.CodeExpired, "request %s expired at %s", r.ID, stampOf(r.ExpiresAt))
	case ap.ID == "":
		return fail(CodeUnauthenticated, "no approver")
	case ap.ID == r.Requester.ID:
		return fail(CodeSelfApproval, "%s requested %s", ap.ID, r.ID)
	}
	if !a.mayAnswer(ap, r) {
		return fail(CodeWrongGroup, "%s (groups %v) may not answer %s request %s (rule %q, risk %s)",
			ap.ID, ap.Groups, r.Kind, r.ID, r.RuleID, r.Risk)
	}
	for _, p := range r.Approvals {
		if p.Approver.ID == ap.ID {
			return fail(CodeDuplicateApprover, "%s already approved %s; a second approver is needed", ap.ID, r.ID)
		}
	}
	return nil
}

func (a *Authenticator) mayAnswer(ap Approver, r Request) bool {
	for _, res := range a.cfg.Restricted {
		if res.Match.Matches(r) && !slices.ContainsFunc(ap.Groups, func(g string) bool { return slices.Contains(res.Groups, g) }) {
			return false
		}
	}
	for _, g := range a.cfg.Groups {
		if !slices.Contains(ap.Groups, g.Name) {
			continue
		}
		for _, m := range g.MayAnswer {
			if m.Matches(r) {
				return true
			}
		}
	}
	return false
}

// RequiredApprovals returns how many distinct approvers must approve r:
// two when a two_person entry matches it, else one.
func (a *Authenticator) RequiredApprovals(r Request) int {
	for _, m := range a.cfg.TwoPerson {
		if m.Matches(r) {
			return 2
		}
	}
	return 1
}

// Answer authorizes ap for r and returns the approval.decided payload that
// records ap's answer, ready to sign (Signer.Sign) and emit with the
// request's approval id, tenant, session and parent_event_id = r.EventID.
//
// A denial is final. An approval is final when it brings r to the approvals
// it requires; its scope is then the narrowest that any of its approvers
// chose. Otherwise it is a partial approval (reason_code needs_approval,
// see the package doc), which the runner does not act on.
func (a *Authenticator) Answer(ap Approver, r Request, outcome events.ApprovalOutcome, scope events.ApprovalScope, comment string) (events.ApprovalDecided, error) {
	if err := a.Authorize(ap, r); err != nil {
		return events.ApprovalDecided{}, err
	}
	d := events.ApprovalDecided{Decision: outcome, Approver: ap.Actor(), Comment: comment, DecidedAt: events.At(a.now())}
	switch outcome {
	case events.ApprovalDenied:
		d.ReasonCode = events.ReasonApprovalDenied
	case events.ApprovalApproved:
		if !r.Offers(scope) {
			return events.ApprovalDecided{}, fail(signing.CodeScopeNotOffered, "scope %q, offered %v", scope, r.Scopes)
		}
		if len(r.Approvals)+1 < a.RequiredApprovals(r) {
			d.Scope, d.ReasonCode = scope, events.ReasonNeedsApproval
			break
		}
		scopes := []events.ApprovalScope{scope}
		for _, p := range r.Approvals {
			scopes = append(scopes, p.Scope)
		}
		d.Scope = NarrowestScope(scopes...)
		d.ReasonCode = events.ReasonApproved
		if d.Scope == events.ScopeSession {
			d.ReasonCode = events.ReasonApprovedForSession
		}
	default:
		return events.ApprovalDecided{}, fail(signing.CodeInvalidDecision, "an approver answers approved or denied, not %q", outcome)
	}
	return d, nil
}

// GenerateToken returns a new random bearer token and the token_sha256 to
// put in the approvers config. Only the hash is stored; the token is shown
// to its approver once.
func GenerateToken() (token, sha256Hex string, err error) {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		return "", "", err
	}
	token = base64.RawURLEncoding.EncodeToString(b)
	return token, HashToken(token), nil
}

// HashToken returns the token_sha256 of a bearer token.
func HashToken(token string) string {
	h := sha256.Sum256([]byte(token))
	return hex.EncodeToString(h[:])
}
