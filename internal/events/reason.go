package events

// ReasonCode is the machine-readable reason a check gives for its verdict.
// The same strings travel into events, back to agents and into SQL, so they
// are never renamed; the events schema enumerates exactly this list.
type ReasonCode string

// Reason codes shared by policy, approvals, the runner and the egress proxy.
const (
	ReasonAllowlisted          ReasonCode = "allowlisted"
	ReasonKnownSafe            ReasonCode = "known_safe"
	ReasonDeniedByRule         ReasonCode = "denied_by_rule"
	ReasonDefaultDeny          ReasonCode = "default_deny"
	ReasonNeedsApproval        ReasonCode = "needs_approval"
	ReasonApproved             ReasonCode = "approved"
	ReasonApprovedForSession   ReasonCode = "approved_for_session"
	ReasonApprovalDenied       ReasonCode = "approval_denied"
	ReasonApprovalExpired      ReasonCode = "approval_expired"
	ReasonNeverAsk             ReasonCode = "never_ask"
	ReasonAuditUnavailable     ReasonCode = "audit_unavailable"
	ReasonSessionHeld          ReasonCode = "session_held"
	ReasonPathOutsideWorkspace ReasonCode = "path_outside_workspace"
	ReasonProtectedPath        ReasonCode = "protected_path"
	ReasonInvalidArguments     ReasonCode = "invalid_arguments"
	ReasonPrivateAddress       ReasonCode = "private_address"
	ReasonLoopbackAddress      ReasonCode = "loopback_address"
	ReasonLinkLocalAddress     ReasonCode = "link_local_address"
	ReasonMetadataAddress      ReasonCode = "metadata_address"
	ReasonMulticastAddress     ReasonCode = "multicast_address"
	ReasonUnspecifiedAddress   ReasonCode = "unspecified_address"
	ReasonReservedAddress      ReasonCode = "reserved_address"
	ReasonSNIMismatch          ReasonCode = "sni_mismatch"
	ReasonDNSFailure           ReasonCode = "dns_failure"
	ReasonConnectionLimit      ReasonCode = "connection_limit"
	ReasonHeaderTooLarge       ReasonCode = "header_too_large"
	ReasonIdleTimeout          ReasonCode = "idle_timeout"
	ReasonBadRequest           ReasonCode = "bad_request"
	ReasonUpstreamError        ReasonCode = "upstream_error"
	ReasonTimeout              ReasonCode = "timeout"
	ReasonSandboxError         ReasonCode = "sandbox_error"
)

// ReasonCodes lists every reason code in the order of the shared list; a
// test checks that the schema's enum is exactly this list.
var ReasonCodes = []ReasonCode{
	ReasonAllowlisted, ReasonKnownSafe, ReasonDeniedByRule, ReasonDefaultDeny,
	ReasonNeedsApproval, ReasonApproved, ReasonApprovedForSession,
	ReasonApprovalDenied, ReasonApprovalExpired, ReasonNeverAsk,
	ReasonAuditUnavailable, ReasonSessionHeld, ReasonPathOutsideWorkspace,
	ReasonProtectedPath, ReasonInvalidArguments, ReasonPrivateAddress,
	ReasonLoopbackAddress, ReasonLinkLocalAddress, ReasonMetadataAddress,
	ReasonMulticastAddress, ReasonUnspecifiedAddress, ReasonReservedAddress,
	ReasonSNIMismatch, ReasonDNSFailure, ReasonConnectionLimit,
	ReasonHeaderTooLarge, ReasonIdleTimeout, ReasonBadRequest,
	ReasonUpstreamError, ReasonTimeout, ReasonSandboxError,
}

// Valid reports whether r is one of ReasonCodes.
func (r ReasonCode) Valid() bool {
	for _, c := range ReasonCodes {
		if c == r {
			return true
		}
	}
	return false
}

// Decision is a check's verdict. Default is deny: the zero value is not a
// decision and fails validation.
type Decision string

// Decisions of policy checks and the egress proxy.
const (
	DecisionAllow Decision = "allow"
	DecisionAsk   Decision = "ask"
	DecisionDeny  Decision = "deny"
)

// ApprovalOutcome is the answer recorded in approval.decided.
type ApprovalOutcome string

// Approval outcomes. Expired and cancelled are treated as denied by runners.
const (
	ApprovalApproved  ApprovalOutcome = "approved"
	ApprovalDenied    ApprovalOutcome = "denied"
	ApprovalExpired   ApprovalOutcome = "expired"
	ApprovalCancelled ApprovalOutcome = "cancelled"
)

// ApprovalScope says how far an approval reaches.
type ApprovalScope string

// Approval scopes: this one call, or the same rule for the rest of the session.
const (
	ScopeOnce    ApprovalScope = "once"
	ScopeSession ApprovalScope = "session"
)

// ApprovalMode says what part an approval played in a policy decision.
type ApprovalMode string

// Approval modes of policy.decision.
const (
	// ApprovalModeNone: no human is involved (plain allow or deny).
	ApprovalModeNone ApprovalMode = "none"
	// ApprovalModeRequired: the decision is ask; an approval.requested follows.
	ApprovalModeRequired ApprovalMode = "required"
	// ApprovalModeOnce: a once-scoped approval authorised this call.
	ApprovalModeOnce ApprovalMode = "once"
	// ApprovalModeSession: an earlier session-scoped approval authorised it.
	ApprovalModeSession ApprovalMode = "session"
)

// ActorType says who caused an event.
type ActorType string

// Actor types, after Kubernetes audit's user/service-account split.
const (
	ActorAgent  ActorType = "agent"
	ActorHuman  ActorType = "human"
	ActorRule   ActorType = "rule"
	ActorSystem ActorType = "system"
)

// Risk grades an action for approvers.
type Risk string

// Risk levels.
const (
	RiskLow      Risk = "low"
	RiskMedium   Risk = "medium"
	RiskHigh     Risk = "high"
	RiskCritical Risk = "critical"
)

// Severity grades an alert.
type Severity string

// Alert severities.
const (
	SeverityInfo     Severity = "info"
	SeverityLow      Severity = "low"
	SeverityMedium   Severity = "medium"
	SeverityHigh     Severity = "high"
	SeverityCritical Severity = "critical"
)
