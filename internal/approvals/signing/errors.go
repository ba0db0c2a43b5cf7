package signing

import (
	"errors"
	"fmt"
	"sync"

	"github.com/agentaudit/agentaudit/internal/events"
)

// Code is the machine-readable reason a check refused something. Codes are
// recorded in the approvals service's request history and returned by its
// API, so they are never renamed. This package declares the codes of
// signature verification and the replay guard; the approvals service
// declares its own (authorization, state) as Codes too, so one Code type
// and one Error type carry every refusal.
type Code string

// Codes of decoding, signature verification and the replay guard.
const (
	CodeMalformed        Code = "malformed"         // not a well-formed decision or request event
	CodeUnknownKey       Code = "unknown_key"       // key id not in the key set
	CodeKeyRetired       Code = "key_retired"       // key past its not_after
	CodeBadSignature     Code = "bad_signature"     // signature does not verify
	CodeApprovalMismatch Code = "approval_mismatch" // decision names another approval id
	CodeSessionMismatch  Code = "session_mismatch"  // decision names another session or tenant
	CodeRequestMismatch  Code = "request_mismatch"  // decision answers another approval.requested event
	CodeExpired          Code = "expired"           // decided after the request expired, or too late to act
	CodeNotDue           Code = "not_due"           // an "expired" outcome before the deadline
	CodeReplay           Code = "replay"            // a decision for an approval already acted on
	CodePartial          Code = "partial_approval"  // first of two approvals: not a final decision
	CodeScopeNotOffered  Code = "scope_not_offered" // approved with a scope the request did not offer
	CodeInvalidDecision  Code = "invalid_decision"  // outcome, reason code and scope do not fit together
)

// Sentinels, one per Code. Every error this package returns for a refusal
// is an *Error that unwraps to one of them.
var (
	ErrMalformed        = NewSentinel(CodeMalformed, "approvals: malformed event")
	ErrUnknownKey       = NewSentinel(CodeUnknownKey, "approvals: unknown signing key")
	ErrKeyRetired       = NewSentinel(CodeKeyRetired, "approvals: signing key retired")
	ErrBadSignature     = NewSentinel(CodeBadSignature, "approvals: bad signature")
	ErrApprovalMismatch = NewSentinel(CodeApprovalMismatch, "approvals: decision for another approval id")
	ErrSessionMismatch  = NewSentinel(CodeSessionMismatch, "approvals: decision for another session")
	ErrRequestMismatch  = NewSentinel(CodeRequestMismatch, "approvals: decision for another request")
	ErrExpired          = NewSentinel(CodeExpired, "approvals: approval expired")
	ErrNotDue           = NewSentinel(CodeNotDue, "approvals: request has not expired yet")
	ErrReplay           = NewSentinel(CodeReplay, "approvals: decision already used")
	ErrPartial          = NewSentinel(CodePartial, "approvals: partial approval, a second approver is needed")
	ErrScopeNotOffered  = NewSentinel(CodeScopeNotOffered, "approvals: scope not offered by the request")
	ErrInvalidDecision  = NewSentinel(CodeInvalidDecision, "approvals: invalid decision")
)

// sentinels maps each Code to its sentinel. NewSentinel fills it while
// packages initialize; a mutex keeps a late declaration safe anyway.
var (
	sentinelsMu sync.RWMutex
	sentinels   = map[Code]error{}
)

// NewSentinel declares the sentinel error of code c, the error every
// refusal with that code unwraps to. Declare each code once, in a
// package-level Err… variable: codes share one namespace (the service's
// request history and API), so a second declaration of a code panics.
func NewSentinel(c Code, msg string) error {
	sentinelsMu.Lock()
	defer sentinelsMu.Unlock()
	if _, dup := sentinels[c]; dup {
		panic("signing: code " + string(c) + " declared twice")
	}
	err := errors.New(msg)
	sentinels[c] = err
	return err
}

func sentinelOf(c Code) error {
	sentinelsMu.RLock()
	defer sentinelsMu.RUnlock()
	return sentinels[c]
}

// Error is a refusal with its machine-readable code.
type Error struct {
	Code   Code
	Detail string
}

func (e *Error) Error() string {
	msg := string(e.Code)
	if s := sentinelOf(e.Code); s != nil {
		msg = s.Error()
	}
	if e.Detail == "" {
		return msg
	}
	return msg + ": " + e.Detail
}

// Unwrap returns the sentinel of e's code.
func (e *Error) Unwrap() error { return sentinelOf(e.Code) }

// ReasonCode maps e onto the shared reason codes a runner reports to the
// agent: an expired approval is approval_expired; any other refusal means
// the action was not approved, approval_denied.
func (e *Error) ReasonCode() events.ReasonCode {
	if e.Code == CodeExpired {
		return events.ReasonApprovalExpired
	}
	return events.ReasonApprovalDenied
}

// Fail returns a refusal with code c and a formatted detail. Declare c's
// sentinel with NewSentinel first.
func Fail(c Code, format string, args ...any) *Error {
	return &Error{Code: c, Detail: fmt.Sprintf(format, args...)}
}

// CodeOf returns the Code of err, or "" when err is nil or not a refusal.
func CodeOf(err error) Code {
	var e *Error
	if errors.As(err, &e) {
		return e.Code
	}
	return ""
}
