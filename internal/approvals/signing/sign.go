package signing

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/agentaudit/agentaudit/internal/events"
)

// signingDomain starts every signed byte string, so a signature over a
// decision can never be taken for a signature over anything else this key
// might sign, or over a later version of the layout.
const signingDomain = "agentaudit approval.decided signature v1\x00"

// RequestRef is what the verifier knows about the request a decision must
// answer: the runner built the approval.requested event itself, and the
// service reads it from the topic. RefOf builds it from that event.
type RequestRef struct {
	ApprovalID string
	Tenant     string
	SessionID  string
	// RequestEventID is the event_id of the approval.requested event; the
	// decision carries it as its parent_event_id.
	RequestEventID string
	// SubjectEventID is the event the request is about (the payload's
	// request_event_id: a tool_call.requested, net.egress or alert.raised).
	SubjectEventID string
	Kind           string
	RuleID         string
	Requester      events.Actor
	Scopes         []events.ApprovalScope
	ExpiresAt      time.Time
}

// RefOf returns the RequestRef of an approval.requested event.
func RefOf(env *events.Envelope) (RequestRef, error) {
	if env == nil || env.EventType != events.TypeApprovalRequested {
		return RequestRef{}, Fail(CodeMalformed, "not an %s event", events.TypeApprovalRequested)
	}
	p, err := env.DecodePayload()
	if err != nil {
		return RequestRef{}, Fail(CodeMalformed, "%v", err)
	}
	if env.ApprovalID == "" || env.EventID == "" {
		return RequestRef{}, Fail(CodeMalformed, "approval.requested without approval_id or event_id")
	}
	ar := p.(*events.ApprovalRequested)
	return RequestRef{
		ApprovalID:     env.ApprovalID,
		Tenant:         env.Tenant,
		SessionID:      env.SessionID,
		RequestEventID: env.EventID,
		SubjectEventID: ar.RequestEventID,
		Kind:           ar.Kind,
		RuleID:         ar.RuleID,
		Requester:      ar.Requester,
		Scopes:         slices.Clone(ar.Scopes),
		ExpiresAt:      ar.ExpiresAt.Time,
	}, nil
}

// SigningBytes returns the byte string a decision's signature covers: a
// domain tag, then each field as name, NUL, 4-byte big-endian length and
// value, in a fixed order. Length prefixes make the encoding unambiguous
// whatever the fields contain.
//
// Covered, from the decision event: tenant, session_id, approval_id,
// parent_event_id (the approval.requested event), event_id, and every
// payload field but the signature (decision, reason_code, scope, approver,
// comment, decided_at, key_id). From the request: the subject event id,
// kind, rule id, requester and expires_at. A decision therefore cannot be
// moved to another request, session, rule or deadline, nor a partial
// approval (reason_code needs_approval) be passed off as a final one.
func SigningBytes(env *events.Envelope, d *events.ApprovalDecided, req RequestRef) []byte {
	b := make([]byte, 0, 512)
	b = append(b, signingDomain...)
	field := func(name, value string) {
		b = append(b, name...)
		b = append(b, 0)
		b = binary.BigEndian.AppendUint32(b, uint32(len(value)))
		b = append(b, value...)
	}
	stamp := func(t time.Time) string {
		if t.IsZero() {
			return ""
		}
		return t.UTC().Truncate(time.Microsecond).Format(events.TimeLayout)
	}
	field("tenant", env.Tenant)
	field("session_id", env.SessionID)
	field("approval_id", env.ApprovalID)
	field("request_event_id", env.ParentEventID)
	field("event_id", env.EventID)
	field("subject_event_id", req.SubjectEventID)
	field("kind", req.Kind)
	field("rule_id", req.RuleID)
	field("requester_type", string(req.Requester.Type))
	field("requester_id", req.Requester.ID)
	field("expires_at", stamp(req.ExpiresAt))
	field("decision", string(d.Decision))
	field("reason_code", string(d.ReasonCode))
	field("scope", string(d.Scope))
	field("approver_type", string(d.Approver.Type))
	field("approver_id", d.Approver.ID)
	field("comment", d.Comment)
	field("decided_at", stamp(d.DecidedAt.Time))
	field("key_id", d.KeyID)
	return b
}

// Signer signs decisions with one Ed25519 key. The zero Signer cannot sign.
type Signer struct {
	keyID string
	priv  ed25519.PrivateKey
}

// NewSigner returns a Signer for priv under keyID.
func NewSigner(keyID string, priv ed25519.PrivateKey) (Signer, error) {
	if err := checkKeyID(keyID); err != nil {
		return Signer{}, err
	}
	if len(priv) != ed25519.PrivateKeySize {
		return Signer{}, fmt.Errorf("approvals: ed25519 private key must be %d bytes, got %d", ed25519.PrivateKeySize, len(priv))
	}
	return Signer{keyID: keyID, priv: slices.Clone(priv)}, nil
}

// GenerateKey makes a new key pair under keyID.
func GenerateKey(keyID string) (Signer, PublicKey, error) {
	if err := checkKeyID(keyID); err != nil {
		return Signer{}, PublicKey{}, err
	}
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return Signer{}, PublicKey{}, fmt.Errorf("approvals: generate key: %w", err)
	}
	return Signer{keyID: keyID, priv: priv}, PublicKey{ID: keyID, Key: pub}, nil
}

// KeyID names the signer's key.
func (s Signer) KeyID() string { return s.keyID }

// Public returns the signer's public key, without a not_after.
func (s Signer) Public() PublicKey {
	if s.priv == nil {
		return PublicKey{}
	}
	return PublicKey{ID: s.keyID, Key: slices.Clone(s.priv.Public().(ed25519.PublicKey))}
}

// Sign sets the key id and signature of the approval.decided event env,
// which must answer req (same approval id, tenant, session, and
// parent_event_id = req.RequestEventID): Sign refuses to sign a decision
// for another request. Set every other field, the event id included,
// before signing; a field changed afterwards breaks the signature.
func (s Signer) Sign(env *events.Envelope, req RequestRef) error {
	if s.priv == nil {
		return errors.New("approvals: zero Signer")
	}
	d, err := DecisionOf(env)
	if err != nil {
		return err
	}
	if err := matchRequest(env, req); err != nil {
		return err
	}
	d.KeyID = s.keyID
	d.Signature = ""
	sig := ed25519.Sign(s.priv, SigningBytes(env, d, req))
	d.Signature = base64.StdEncoding.EncodeToString(sig)
	return env.SetPayload(d)
}

// DecisionOf returns the payload of an approval.decided event, unverified.
func DecisionOf(env *events.Envelope) (*events.ApprovalDecided, error) {
	if env == nil || env.EventType != events.TypeApprovalDecided {
		return nil, Fail(CodeMalformed, "not an %s event", events.TypeApprovalDecided)
	}
	p, err := env.DecodePayload()
	if err != nil {
		return nil, Fail(CodeMalformed, "%v", err)
	}
	return p.(*events.ApprovalDecided), nil
}

// matchRequest checks the envelope fields that name the request.
func matchRequest(env *events.Envelope, req RequestRef) error {
	switch {
	case env.ApprovalID == "" || env.ApprovalID != req.ApprovalID:
		return Fail(CodeApprovalMismatch, "decision for %q, request %q", env.ApprovalID, req.ApprovalID)
	case env.SessionID != req.SessionID || env.Tenant != req.Tenant:
		return Fail(CodeSessionMismatch, "decision for session %q/%q, request %q/%q",
			env.Tenant, env.SessionID, req.Tenant, req.SessionID)
	case env.ParentEventID == "" || env.ParentEventID != req.RequestEventID:
		return Fail(CodeRequestMismatch, "decision answers event %q, request is event %q",
			env.ParentEventID, req.RequestEventID)
	}
	return nil
}

// Check checks everything about the decision d of env that Verify checks
// but the key and the signature: that env answers req and that the outcome
// fits it. For a state that holds decisions it cannot verify.
func Check(env *events.Envelope, d *events.ApprovalDecided, req RequestRef) error {
	if err := matchRequest(env, req); err != nil {
		return err
	}
	return checkOutcome(d, req)
}

// checkOutcome checks that a decision's outcome, reason code and scope fit
// together and fit the request: approvals carry an offered scope and
// approved/approved_for_session (or needs_approval when partial), denials
// approval_denied, expiries approval_expired and a time at or after the
// deadline; approvals and denials must come before the deadline.
func checkOutcome(d *events.ApprovalDecided, req RequestRef) error {
	at := d.DecidedAt.Time
	switch d.Decision {
	case events.ApprovalApproved:
		if !slices.Contains(req.Scopes, d.Scope) {
			return Fail(CodeScopeNotOffered, "scope %q, offered %v", d.Scope, req.Scopes)
		}
		want := events.ReasonApproved
		if d.Scope == events.ScopeSession {
			want = events.ReasonApprovedForSession
		}
		if d.ReasonCode != want && d.ReasonCode != events.ReasonNeedsApproval {
			return Fail(CodeInvalidDecision, "approved with scope %s needs reason %s, got %q", d.Scope, want, d.ReasonCode)
		}
		if at.After(req.ExpiresAt) {
			return Fail(CodeExpired, "approved at %s, request expired at %s", stampOf(at), stampOf(req.ExpiresAt))
		}
	case events.ApprovalDenied:
		if d.ReasonCode != events.ReasonApprovalDenied {
			return Fail(CodeInvalidDecision, "denied needs reason %s, got %q", events.ReasonApprovalDenied, d.ReasonCode)
		}
		if at.After(req.ExpiresAt) {
			return Fail(CodeExpired, "denied at %s, request expired at %s", stampOf(at), stampOf(req.ExpiresAt))
		}
	case events.ApprovalExpired:
		if d.ReasonCode != events.ReasonApprovalExpired {
			return Fail(CodeInvalidDecision, "expired needs reason %s, got %q", events.ReasonApprovalExpired, d.ReasonCode)
		}
		if at.Before(req.ExpiresAt) {
			return Fail(CodeNotDue, "expired at %s, deadline %s", stampOf(at), stampOf(req.ExpiresAt))
		}
	case events.ApprovalCancelled:
		if d.ReasonCode != events.ReasonApprovalDenied {
			return Fail(CodeInvalidDecision, "cancelled needs reason %s, got %q", events.ReasonApprovalDenied, d.ReasonCode)
		}
	default:
		return Fail(CodeInvalidDecision, "unknown decision %q", d.Decision)
	}
	return nil
}

func isPartial(d *events.ApprovalDecided) bool {
	return d.Decision == events.ApprovalApproved && d.ReasonCode == events.ReasonNeedsApproval
}

func stampOf(t time.Time) string { return t.UTC().Format(events.TimeLayout) }
