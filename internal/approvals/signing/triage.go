package signing

import (
	"crypto/ed25519"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"errors"
	"time"

	"github.com/agentaudit/agentaudit/internal/events"
)

// triageDomain starts every signed triage byte string, so a triage
// signature can never pass for an approval decision's, or the reverse.
const triageDomain = "agentaudit triage signature v1\x00"

// IsTriage reports whether eventType is one of the triage event types
// (alert.triaged, rule.suppressed, rule.unsuppressed).
func IsTriage(eventType string) bool {
	switch eventType {
	case events.TypeAlertTriaged, events.TypeRuleSuppressed, events.TypeRuleUnsuppressed:
		return true
	}
	return false
}

// TriageSigningBytes returns the byte string a triage event's signature
// covers: a domain tag, then event_type, tenant, session_id, event_id,
// parent_event_id and the payload's JSON with an empty signature, each as
// name, NUL, 4-byte big-endian length and value. p must be env's payload
// as its Go type.
func TriageSigningBytes(env *events.Envelope, p events.Payload) ([]byte, error) {
	body, err := json.Marshal(p)
	if err != nil {
		return nil, Fail(CodeMalformed, "%v", err)
	}
	b := make([]byte, 0, 256+len(body))
	b = append(b, triageDomain...)
	field := func(name, value string) {
		b = append(b, name...)
		b = append(b, 0)
		b = binary.BigEndian.AppendUint32(b, uint32(len(value)))
		b = append(b, value...)
	}
	field("event_type", env.EventType)
	field("tenant", env.Tenant)
	field("session_id", env.SessionID)
	field("event_id", env.EventID)
	field("parent_event_id", env.ParentEventID)
	field("payload", string(body))
	return b, nil
}

// triageSig reads, and lets set, the signing fields of a triage payload.
type triageSig struct {
	keyID, sig *string
	at         time.Time
}

func triagePayload(env *events.Envelope) (events.Payload, triageSig, error) {
	if env == nil || !IsTriage(env.EventType) {
		return nil, triageSig{}, Fail(CodeMalformed, "not a triage event")
	}
	p, err := env.DecodePayload()
	if err != nil {
		return nil, triageSig{}, Fail(CodeMalformed, "%v", err)
	}
	switch v := p.(type) {
	case *events.AlertTriaged:
		return p, triageSig{&v.KeyID, &v.Signature, v.TriagedAt.Time}, nil
	case *events.RuleSuppressed:
		return p, triageSig{&v.KeyID, &v.Signature, v.SuppressedAt.Time}, nil
	case *events.RuleUnsuppressed:
		return p, triageSig{&v.KeyID, &v.Signature, v.UnsuppressedAt.Time}, nil
	}
	return nil, triageSig{}, Fail(CodeMalformed, "not a triage event")
}

// TriageOf returns the payload of a triage event, unverified.
func TriageOf(env *events.Envelope) (events.Payload, error) {
	p, _, err := triagePayload(env)
	return p, err
}

// SignTriage sets the key id and signature of a triage event. Set every
// other field, the event id included, before signing.
func (s Signer) SignTriage(env *events.Envelope) error {
	if s.priv == nil {
		return errors.New("approvals: zero Signer")
	}
	p, ts, err := triagePayload(env)
	if err != nil {
		return err
	}
	*ts.keyID, *ts.sig = s.keyID, ""
	b, err := TriageSigningBytes(env, p)
	if err != nil {
		return err
	}
	*ts.sig = base64.StdEncoding.EncodeToString(ed25519.Sign(s.priv, b))
	return env.SetPayload(p)
}

// VerifyTriage checks a triage event's signature, with key retirement
// judged at the time the payload says the analyst acted, and returns its
// payload.
func (ks *KeySet) VerifyTriage(env *events.Envelope) (events.Payload, error) {
	p, ts, err := triagePayload(env)
	if err != nil {
		return nil, err
	}
	k, ok := ks.keys[*ts.keyID]
	if !ok {
		return nil, Fail(CodeUnknownKey, "key id %q", *ts.keyID)
	}
	if !k.NotAfter.IsZero() && ts.at.After(k.NotAfter) {
		return nil, Fail(CodeKeyRetired, "key %q retired at %s", k.ID, k.NotAfter.UTC().Format(time.RFC3339))
	}
	sig, err := base64.StdEncoding.Strict().DecodeString(*ts.sig)
	if err != nil || len(sig) != ed25519.SignatureSize {
		return nil, Fail(CodeBadSignature, "signature is not %d bytes of base64", ed25519.SignatureSize)
	}
	keep := *ts.sig
	*ts.sig = ""
	b, err := TriageSigningBytes(env, p)
	*ts.sig = keep
	if err != nil {
		return nil, err
	}
	if !ed25519.Verify(k.Key, b, sig) {
		return nil, Fail(CodeBadSignature, "key %q", k.ID)
	}
	return p, nil
}
