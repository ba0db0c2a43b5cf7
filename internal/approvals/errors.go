package approvals

import (
	"github.com/agentaudit/agentaudit/internal/approvals/signing"
)

// Codes of the state machine, authorization and triage. Signature
// verification's codes (malformed, bad_signature, expired, …) are declared
// by package signing; both kinds are signing.Code, recorded in the request
// history and returned by the API, so they are never renamed.
const (
	CodeUnknownApproval    signing.Code = "unknown_approval"    // decision for a request this state never saw
	CodeAlreadyDecided     signing.Code = "already_decided"     // a valid decision already won
	CodeSelfApproval       signing.Code = "self_approval"       // the requester answered its own request
	CodeWrongGroup         signing.Code = "wrong_group"         // no group of the approver may answer this request
	CodeDuplicateApprover  signing.Code = "duplicate_approver"  // the same approver twice under the two-person rule
	CodeUnauthenticated    signing.Code = "unauthenticated"     // no approver matches the credential
	CodeRateLimited        signing.Code = "rate_limited"        // too many failed authentications from this address
	CodeUnknownAlert       signing.Code = "unknown_alert"       // triage of an alert the service has not seen
	CodeInvalidTriage      signing.Code = "invalid_triage"      // a triage action or suppression that does not fit together
	CodeUnknownSuppression signing.Code = "unknown_suppression" // lifting a suppression that is not active
)

// Sentinels, one per Code. Every error this package returns for a refusal is
// a *signing.Error that unwraps to one of them or to one of package
// signing's, so callers match with errors.Is and read the code with
// signing.CodeOf.
var (
	ErrUnknownApproval    = signing.NewSentinel(CodeUnknownApproval, "approvals: unknown approval id")
	ErrAlreadyDecided     = signing.NewSentinel(CodeAlreadyDecided, "approvals: request already decided")
	ErrSelfApproval       = signing.NewSentinel(CodeSelfApproval, "approvals: requester may not answer its own request")
	ErrWrongGroup         = signing.NewSentinel(CodeWrongGroup, "approvals: approver's groups may not answer this request")
	ErrDuplicateApprover  = signing.NewSentinel(CodeDuplicateApprover, "approvals: two-person rule needs a different approver")
	ErrUnauthenticated    = signing.NewSentinel(CodeUnauthenticated, "approvals: unauthenticated")
	ErrRateLimited        = signing.NewSentinel(CodeRateLimited, "approvals: too many failed authentications")
	ErrUnknownAlert       = signing.NewSentinel(CodeUnknownAlert, "approvals: unknown alert")
	ErrInvalidTriage      = signing.NewSentinel(CodeInvalidTriage, "approvals: invalid triage")
	ErrUnknownSuppression = signing.NewSentinel(CodeUnknownSuppression, "approvals: no such active suppression")
)

// fail is signing.Fail, short for the many refusals below.
func fail(c signing.Code, format string, args ...any) *signing.Error {
	return signing.Fail(c, format, args...)
}
