package approvals

import (
	"errors"
	"fmt"

	"github.com/agentaudit/agentaudit/internal/events"
)

// Code is the machine-readable reason an approvals check refused something.
// Codes are recorded in the request history and returned by the API, so
// they are never renamed. Where a runner needs a shared reason code for the
// agent, Error.ReasonCode maps a Code onto the shared list.
type Code string

// Codes of signature verification, the state machine and authorization.
const (
	CodeMalformed          Code = "malformed"           // not a well-formed decision or request event
	CodeUnknownKey         Code = "unknown_key"         // key id not in the key set
	CodeKeyRetired         Code = "key_retired"         // key past its not_after
	CodeBadSignature       Code = "bad_signature"       // signature does not verify
	CodeApprovalMismatch   Code = "approval_mismatch"   // decision names another approval id
	CodeSessionMismatch    Code = "session_mismatch"    // decision names another session or tenant
	CodeRequestMismatch    Code = "request_mismatch"    // decision answers another approval.requested event
	CodeExpired            Code = "expired"             // decided after the request expired, or too late to act
	CodeNotDue             Code = "not_due"             // an "expired" outcome before the deadline
	CodeReplay             Code = "replay"              // a decision for an approval already acted on
	CodePartial            Code = "partial_approval"    // first of two approvals: not a final decision
	CodeScopeNotOffered    Code = "scope_not_offered"   // approved with a scope the request did not offer
	CodeInvalidDecision    Code = "invalid_decision"    // outcome, reason code and scope do not fit together
	CodeUnknownApproval    Code = "unknown_approval"    // decision for a request this state never saw
	CodeAlreadyDecided     Code = "already_decided"     // a valid decision already won
	CodeSelfApproval       Code = "self_approval"       // the requester answered its own request
	CodeWrongGroup         Code = "wrong_group"         // no group of the approver may answer this request
	CodeDuplicateApprover  Code = "duplicate_approver"  // the same approver twice under the two-person rule
	CodeUnauthenticated    Code = "unauthenticated"     // no approver matches the credential
	CodeRateLimited        Code = "rate_limited"        // too many failed authentications from this address
	CodeUnknownAlert       Code = "unknown_alert"       // triage of an alert the service has not seen
	CodeInvalidTriage      Code = "invalid_triage"      // a triage action or suppression that does not fit together
	CodeUnknownSuppression Code = "unknown_suppression" // lifting a suppression that is not active
)

// Sentinels, one per Code. Every error this package returns for a refusal is
// an *Error that unwraps to one of them, so callers match with errors.Is and
// read the code with CodeOf.
var (
	ErrMalformed          = errors.New("approvals: malformed event")
	ErrUnknownKey         = errors.New("approvals: unknown signing key")
	ErrKeyRetired         = errors.New("approvals: signing key retired")
	ErrBadSignature       = errors.New("approvals: bad signature")
	ErrApprovalMismatch   = errors.New("approvals: decision for another approval id")
	ErrSessionMismatch    = errors.New("approvals: decision for another session")
	ErrRequestMismatch    = errors.New("approvals: decision for another request")
	ErrExpired            = errors.New("approvals: approval expired")
	ErrNotDue             = errors.New("approvals: request has not expired yet")
	ErrReplay             = errors.New("approvals: decision already used")
	ErrPartial            = errors.New("approvals: partial approval, a second approver is needed")
	ErrScopeNotOffered    = errors.New("approvals: scope not offered by the request")
	ErrInvalidDecision    = errors.New("approvals: invalid decision")
	ErrUnknownApproval    = errors.New("approvals: unknown approval id")
	ErrAlreadyDecided     = errors.New("approvals: request already decided")
	ErrSelfApproval       = errors.New("approvals: requester may not answer its own request")
	ErrWrongGroup         = errors.New("approvals: approver's groups may not answer this request")
	ErrDuplicateApprover  = errors.New("approvals: two-person rule needs a different approver")
	ErrUnauthenticated    = errors.New("approvals: unauthenticated")
	ErrRateLimited        = errors.New("approvals: too many failed authentications")
	ErrUnknownAlert       = errors.New("approvals: unknown alert")
	ErrInvalidTriage      = errors.New("approvals: invalid triage")
	ErrUnknownSuppression = errors.New("approvals: no such active suppression")
)

var sentinels = map[Code]error{
	CodeMalformed: ErrMalformed, CodeUnknownKey: ErrUnknownKey, CodeKeyRetired: ErrKeyRetired,
	CodeBadSignature: ErrBadSignature, CodeApprovalMismatch: ErrApprovalMismatch,
	CodeSessionMismatch: ErrSessionMismatch, CodeRequestMismatch: ErrRequestMismatch,
	CodeExpired: ErrExpired, CodeNotDue: ErrNotDue, CodeReplay: ErrReplay, CodePartial: ErrPartial,
	CodeScopeNotOffered: ErrScopeNotOffered, CodeInvalidDecision: ErrInvalidDecision,
	CodeUnknownApproval: ErrUnknownApproval, CodeAlreadyDecided: ErrAlreadyDecided,
	CodeSelfApproval: ErrSelfApproval, CodeWrongGroup: ErrWrongGroup,
	CodeDuplicateApprover: ErrDuplicateApprover, CodeUnauthenticated: ErrUnauthenticated,
	CodeRateLimited: ErrRateLimited, CodeUnknownAlert: ErrUnknownAlert, CodeInvalidTriage: ErrInvalidTriage,
	CodeUnknownSuppression: ErrUnknownSuppression,
}

// Error is a refusal with its machine-readable code.
type Error struct {
	Code   Code
	Detail string
}

func (e *Error) Error() string {
	if e.Detail == "" {
		return sentinels[e.Code].Error()
	}
	return sentinels[e.Code].Error() + ": " + e.Detail
}

// Unwrap returns the sentinel of e's code.
func (e *Error) Unwrap() error { return sentinels[e.Code] }

// ReasonCode maps e onto the shared reason codes a runner reports to the
// agent: an expired approval is approval_expired; any other refusal means
// the action was not approved, approval_denied.
func (e *Error) ReasonCode() events.ReasonCode {
	if e.Code == CodeExpired {
		return events.ReasonApprovalExpired
	}
	return events.ReasonApprovalDenied
}

func fail(c Code, format string, args ...any) *Error {
	return &Error{Code: c, Detail: fmt.Sprintf(format, args...)}
}

// CodeOf returns the Code of err, or "" when err is nil or not from this
// package.
func CodeOf(err error) Code {
	var e *Error
	if errors.As(err, &e) {
		return e.Code
	}
	return ""
}
