package events

// Event types of schema major version 1. Each has a schema
// schemas/v1/<type>.json and a payload type below.
const (
	TypeSessionStarted    = "session.started"
	TypeSessionEnded      = "session.ended"
	TypeToolCallRequested = "tool_call.requested"
	TypePolicyDecision    = "policy.decision"
	TypeApprovalRequested = "approval.requested"
	TypeApprovalDecided   = "approval.decided"
	TypeToolCallCompleted = "tool_call.completed"
	TypeNetEgress         = "net.egress"
	TypeSandboxViolation  = "sandbox.violation"
	TypeAlertRaised       = "alert.raised"
	TypeSessionHeld       = "session.held"
	TypeSessionReleased   = "session.released"
	TypeProcessExec       = "process.exec"
)

// EventTypes lists every v1 event type.
var EventTypes = []string{
	TypeSessionStarted, TypeSessionEnded, TypeToolCallRequested,
	TypePolicyDecision, TypeApprovalRequested, TypeApprovalDecided,
	TypeToolCallCompleted, TypeNetEgress, TypeSandboxViolation,
	TypeAlertRaised, TypeSessionHeld, TypeSessionReleased,
	TypeProcessExec,
	TypeAgentPrompt, TypeAgentModelCall, TypeAgentResponse, TypeAgentToolDecision,
	TypeAgentToolResult, TypeAgentSession, TypeAgentOther,
	TypeAlertTriaged, TypeRuleSuppressed, TypeRuleUnsuppressed,
}

// Payload is the type-specific body of an event. Each implementation mirrors
// the payload definition of schemas/v1/<EventType()>.json field for field.
type Payload interface {
	EventType() string
}

// newPayload returns a pointer to a zero payload of the given type, or nil.
func newPayload(eventType string) Payload {
	switch eventType {
	case TypeSessionStarted:
		return &SessionStarted{}
	case TypeSessionEnded:
		return &SessionEnded{}
	case TypeToolCallRequested:
		return &ToolCallRequested{}
	case TypePolicyDecision:
		return &PolicyDecision{}
	case TypeApprovalRequested:
		return &ApprovalRequested{}
	case TypeApprovalDecided:
		return &ApprovalDecided{}
	case TypeToolCallCompleted:
		return &ToolCallCompleted{}
	case TypeNetEgress:
		return &NetEgress{}
	case TypeSandboxViolation:
		return &SandboxViolation{}
	case TypeAlertRaised:
		return &AlertRaised{}
	case TypeSessionHeld:
		return &SessionHeld{}
	case TypeSessionReleased:
		return &SessionReleased{}
	case TypeProcessExec:
		return &ProcessExec{}
	case TypeAgentPrompt:
		return &AgentPrompt{}
	case TypeAgentModelCall:
		return &AgentModelCall{}
	case TypeAgentResponse:
		return &AgentResponse{}
	case TypeAgentToolDecision:
		return &AgentToolDecision{}
	case TypeAgentToolResult:
		return &AgentToolResult{}
	case TypeAgentSession:
		return &AgentSession{}
	case TypeAlertTriaged:
		return &AlertTriaged{}
	case TypeRuleSuppressed:
		return &RuleSuppressed{}
	case TypeRuleUnsuppressed:
		return &RuleUnsuppressed{}
	case TypeAgentOther:
		return &AgentOther{}
	}
	return nil
}

// ClientInfo names the agent client that opened a session (MCP clientInfo).
type ClientInfo struct {
	Name    string `json:"name"`
	Version string `json:"version,omitempty"`
}

// SessionStarted opens a session: where the agent works and in which sandbox.
type SessionStarted struct {
	// Workspace is the host directory mounted read-write at /workspace.
	Workspace string `json:"workspace"`
	// SandboxProfile names the sandbox profile; SandboxProfileSHA256 pins
	// its exact content so the confinement can be reproduced later.
	SandboxProfile       string `json:"sandbox_profile,omitempty"`
	SandboxProfileSHA256 string `json:"sandbox_profile_sha256"`
	// Image is the sandbox image reference, ImageID its local image id.
	Image   string `json:"image"`
	ImageID string `json:"image_id,omitempty"`
	// Operator is the human or service account that started the runner.
	Operator string `json:"operator,omitempty"`
	// Mode is how the agent talks to the runner: mcp or exec.
	Mode          string      `json:"mode,omitempty"`
	Client        *ClientInfo `json:"client,omitempty"`
	RunnerVersion string      `json:"runner_version,omitempty"`
}

// EventType implements Payload.
func (SessionStarted) EventType() string { return TypeSessionStarted }

// SessionCounts sums what happened in a session, so a report can cross-check
// the events it found against what the runner says it emitted.
type SessionCounts struct {
	ToolCalls        uint64 `json:"tool_calls"`
	Allowed          uint64 `json:"allowed"`
	Asked            uint64 `json:"asked"`
	Denied           uint64 `json:"denied"`
	ApprovalsGranted uint64 `json:"approvals_granted"`
	EgressAllowed    uint64 `json:"egress_allowed"`
	EgressDenied     uint64 `json:"egress_denied"`
	Violations       uint64 `json:"violations"`
	// Execs counts process.exec events, ExecsDenied those with decision
	// deny; both are left out when zero (runners without a supervisor).
	Execs       uint64 `json:"execs,omitempty"`
	ExecsDenied uint64 `json:"execs_denied,omitempty"`
}

// Session end reasons.
const (
	EndCompleted    = "completed"
	EndClientClosed = "client_closed"
	EndTimeout      = "timeout"
	EndHeld         = "held"
	EndError        = "error"
	EndShutdown     = "shutdown"
	// EndRunnerLost: a later runner start found the session's sandbox
	// without its runner and recorded this end on the dead runner's chain.
	EndRunnerLost = "runner_lost"
	// EndSandboxFailed: the sandbox supervisor died; the session failed.
	EndSandboxFailed = "sandbox_failed"
)

// SessionEnded closes a session.
type SessionEnded struct {
	Reason     string        `json:"reason"`
	DurationMS uint64        `json:"duration_ms"`
	Counts     SessionCounts `json:"counts"`
	// Error is a short description when Reason is error, runner_lost or
	// sandbox_failed.
	Error string `json:"error,omitempty"`
}

// EventType implements Payload.
func (SessionEnded) EventType() string { return TypeSessionEnded }

// ToolArguments are the audit copy of a tool call's arguments: bounded, and
// never environment values or file contents (only their names, length and
// sha256).
type ToolArguments struct {
	Argv          []string `json:"argv,omitempty"`
	Command       string   `json:"command,omitempty"`
	Cwd           string   `json:"cwd,omitempty"`
	Path          string   `json:"path,omitempty"`
	URL           string   `json:"url,omitempty"`
	ContentLength *uint64  `json:"content_length,omitempty"`
	ContentSHA256 string   `json:"content_sha256,omitempty"`
	EnvKeys       []string `json:"env_keys,omitempty"`
	TimeoutMS     uint64   `json:"timeout_ms,omitempty"`
}

// ToolCallRequested records what an agent asked to run, before any decision.
type ToolCallRequested struct {
	// ToolName follows gen_ai.tool.name.
	ToolName  string        `json:"tool_name"`
	Arguments ToolArguments `json:"arguments"`
	// ArgumentsSHA256 is the sha256 of the arguments exactly as received,
	// so the bounded copy above can be tied to the original.
	ArgumentsSHA256 string `json:"arguments_sha256"`
	// ArgumentsTruncated says a field of Arguments was cut to its bound.
	ArgumentsTruncated bool `json:"arguments_truncated"`
	// ClientMeta is the agent's own correlation for the call (MCP _meta),
	// so SQL can join the audit trail with the agent's telemetry.
	ClientMeta *ClientMeta `json:"client_meta,omitempty"`
}

// ClientMeta is what an agent said about a call to correlate it with its
// own records: Codex sends callId, sessionId, threadId, a turn id and a
// traceparent in the request's _meta; Claude Code its tool-use id.
type ClientMeta struct {
	CallID      string `json:"call_id,omitempty"`
	ToolUseID   string `json:"tool_use_id,omitempty"`
	SessionID   string `json:"session_id,omitempty"`
	ThreadID    string `json:"thread_id,omitempty"`
	TurnID      string `json:"turn_id,omitempty"`
	Traceparent string `json:"traceparent,omitempty"`
}

// EventType implements Payload.
func (ToolCallRequested) EventType() string { return TypeToolCallRequested }

// PolicyDecision records the verdict of the tool-call policy.
type PolicyDecision struct {
	Decision   Decision   `json:"decision"`
	ReasonCode ReasonCode `json:"reason_code"`
	// RuleID is the matched rule; empty when no rule matched (default deny).
	RuleID        string       `json:"rule_id,omitempty"`
	Justification string       `json:"justification,omitempty"`
	ApprovalMode  ApprovalMode `json:"approval_mode"`
	Risk          Risk         `json:"risk,omitempty"`
	// EvalMicros is how long the policy took to decide.
	EvalMicros uint64 `json:"eval_us,omitempty"`
}

// EventType implements Payload.
func (PolicyDecision) EventType() string { return TypePolicyDecision }

// Approval request kinds.
const (
	ApprovalKindToolCall    = "tool_call"
	ApprovalKindEgress      = "egress"
	ApprovalKindSessionHold = "session_hold"
)

// ApprovalRequested asks a human to approve an action.
type ApprovalRequested struct {
	Kind string `json:"kind"`
	// Summary says what would happen; Reason why approval is needed.
	Summary    string     `json:"summary"`
	Reason     string     `json:"reason"`
	ReasonCode ReasonCode `json:"reason_code"`
	RuleID     string     `json:"rule_id,omitempty"`
	Risk       Risk       `json:"risk"`
	// Requester may not approve its own request.
	Requester Actor `json:"requester"`
	// Scopes the approver may grant.
	Scopes    []ApprovalScope `json:"scopes"`
	ExpiresAt Time            `json:"expires_at"`
	// RequestEventID is the event the request is about (a tool_call.requested,
	// a net.egress decision or an alert.raised).
	RequestEventID string `json:"request_event_id,omitempty"`
	// Preview shows the approver what a file write would do. Only the
	// runner can read the file it would replace, so it fills this in.
	Preview *WritePreview `json:"preview,omitempty"`
}

// EventType implements Payload.
func (ApprovalRequested) EventType() string { return TypeApprovalRequested }

// Bounds of a WritePreview, in bytes; the schema enforces them.
const (
	MaxPreviewContent = 16 << 10
	MaxPreviewDiff    = 32 << 10
)

// WritePreview is a bounded, redacted view of a file write awaiting
// approval: the new content and a unified diff against the file it would
// replace. Binary content is never shown, only its length and sha256.
type WritePreview struct {
	Path          string `json:"path"`
	ContentLength uint64 `json:"content_length"`
	ContentSHA256 string `json:"content_sha256"`
	// Content is the new content, cut to MaxPreviewContent, secrets
	// replaced; empty when Binary.
	Content string `json:"content,omitempty"`
	// Diff is a unified diff from the current file (or /dev/null when
	// NewFile) to Content, cut to MaxPreviewDiff.
	Diff      string `json:"diff,omitempty"`
	NewFile   bool   `json:"new_file"`
	Binary    bool   `json:"binary"`
	Truncated bool   `json:"truncated"`
	// Redacted counts the secrets replaced in Content and Diff.
	Redacted uint64 `json:"redacted"`
}

// ApprovalDecided is a signed answer to an approval request.
type ApprovalDecided struct {
	Decision   ApprovalOutcome `json:"decision"`
	ReasonCode ReasonCode      `json:"reason_code"`
	Scope      ApprovalScope   `json:"scope,omitempty"`
	Approver   Actor           `json:"approver"`
	Comment    string          `json:"comment,omitempty"`
	DecidedAt  Time            `json:"decided_at"`
	// KeyID names the Ed25519 key; Signature is its base64 signature over
	// the approval's signing bytes (defined by internal/approvals).
	KeyID     string `json:"key_id"`
	Signature string `json:"signature"`
}

// EventType implements Payload.
func (ApprovalDecided) EventType() string { return TypeApprovalDecided }

// Output describes one output stream of a tool call: its full length and
// sha256, and a truncated copy.
type Output struct {
	Length    uint64 `json:"length"`
	SHA256    string `json:"sha256"`
	Text      string `json:"text"`
	Truncated bool   `json:"truncated"`
}

// Kill reasons of tool_call.completed.
const (
	KillTimeout     = "timeout"
	KillCPULimit    = "cpu_limit"
	KillOutputLimit = "output_limit"
	KillCancelled   = "cancelled"
	KillSessionHeld = "session_held"
	// KillRunnerLost: the runner died during the call; a later runner
	// recorded the completion (exit code -1, reason sandbox_error).
	KillRunnerLost = "runner_lost"
	// KillExecDenied: the call was stopped because an exec inside it was
	// denied; ReasonCode is the exec's reason.
	KillExecDenied = "exec_denied"
)

// ResourceUsage is what a call's processes used (getrusage of the top
// process and the descendants it waited for).
type ResourceUsage struct {
	UserMS   uint64 `json:"user_ms"`
	SystemMS uint64 `json:"system_ms"`
	// MaxRSSKB is the largest resident set of one process, in KiB.
	MaxRSSKB uint64 `json:"max_rss_kb"`
}

// ToolCallCompleted records how an executed tool call ended.
type ToolCallCompleted struct {
	// ExitCode is the process exit status; -1 when it never produced one.
	ExitCode     int        `json:"exit_code"`
	DurationMS   uint64     `json:"duration_ms"`
	TimedOut     bool       `json:"timed_out"`
	KilledReason string     `json:"killed_reason,omitempty"`
	Stdout       Output     `json:"stdout"`
	Stderr       Output     `json:"stderr"`
	ReasonCode   ReasonCode `json:"reason_code,omitempty"`
	Error        string     `json:"error,omitempty"`
	// Signal is the signal that ended the top process (0: none).
	Signal int            `json:"signal,omitempty"`
	Rusage *ResourceUsage `json:"rusage,omitempty"`
	// LeftoversKilled counts the processes the call left running that were
	// killed when it ended.
	LeftoversKilled uint64 `json:"leftovers_killed,omitempty"`
}

// EventType implements Payload.
func (ToolCallCompleted) EventType() string { return TypeToolCallCompleted }

// Egress phases: the decision when a connection is asked for, and the close
// with byte counts.
const (
	PhaseDecision = "decision"
	PhaseClosed   = "closed"
)

// NetEgress records an egress proxy decision or the close of a connection.
type NetEgress struct {
	Phase      string     `json:"phase"`
	Host       string     `json:"host"`
	Port       uint16     `json:"port"`
	ResolvedIP string     `json:"resolved_ip,omitempty"`
	Method     string     `json:"method,omitempty"`
	SNI        string     `json:"sni,omitempty"`
	Decision   Decision   `json:"decision"`
	ReasonCode ReasonCode `json:"reason_code"`
	RuleID     string     `json:"rule_id,omitempty"`
	// StatusCode is the HTTP status the proxy returned or relayed.
	StatusCode    uint16 `json:"status_code,omitempty"`
	BytesSent     uint64 `json:"bytes_sent"`
	BytesReceived uint64 `json:"bytes_received"`
	DurationMS    uint64 `json:"duration_ms"`
}

// EventType implements Payload.
func (NetEgress) EventType() string { return TypeNetEgress }

// Sandbox violation kinds.
const (
	ViolationSeccomp    = "seccomp"
	ViolationPath       = "path"
	ViolationRlimit     = "rlimit"
	ViolationNetwork    = "network"
	ViolationCapability = "capability"
	ViolationEscape     = "escape"
	// ViolationExec: an exec was denied.
	ViolationExec = "exec"
	// ViolationTimeout: a call was killed at its time limit.
	ViolationTimeout = "timeout"
	// ViolationMemory: a process ran out of memory or address space.
	ViolationMemory = "memory"
	// ViolationPids: the process limit (nproc/pids) was hit.
	ViolationPids = "pids"
	// ViolationLeftover: processes a call left running were killed when it
	// ended.
	ViolationLeftover = "leftover"
	// ViolationSupervisor: the sandbox supervisor failed or died.
	ViolationSupervisor = "supervisor"
)

// SandboxViolation records an attempt to leave the sandbox's limits, a limit
// the sandbox enforced on a call, or the failure of its supervisor. Path is
// also a protected path whose change was reverted (ViolationPath).
type SandboxViolation struct {
	Kind       string     `json:"kind"`
	Detail     string     `json:"detail"`
	Path       string     `json:"path,omitempty"`
	Syscall    string     `json:"syscall,omitempty"`
	ReasonCode ReasonCode `json:"reason_code,omitempty"`
	// PID and Argv name the process involved (Argv bounded by BoundArgv).
	PID           int      `json:"pid,omitempty"`
	Argv          []string `json:"argv,omitempty"`
	ArgvTruncated bool     `json:"argv_truncated,omitempty"`
	// Count is how many: processes killed (timeout, leftover, supervisor)
	// or running at the limit (pids).
	Count uint64 `json:"count,omitempty"`
}

// EventType implements Payload.
func (SandboxViolation) EventType() string { return TypeSandboxViolation }

// Alert actions.
const (
	AlertNotify = "notify"
	AlertHold   = "hold"
)

// AlertRaised is a detection rule's finding.
type AlertRaised struct {
	RuleID      string   `json:"rule_id"`
	RuleVersion string   `json:"rule_version"`
	Severity    Severity `json:"severity"`
	// GroupKey is what dedup groups matches by (for example the session).
	GroupKey string `json:"group_key"`
	// Count is the matches in this alert; Suppressed the duplicate matches
	// folded into it by dedup.
	Count           uint64   `json:"count"`
	Suppressed      uint64   `json:"suppressed"`
	FirstSeen       Time     `json:"first_seen"`
	LastSeen        Time     `json:"last_seen"`
	MatchedEventIDs []string `json:"matched_event_ids"`
	Message         string   `json:"message"`
	Action          string   `json:"action"`
}

// EventType implements Payload.
func (AlertRaised) EventType() string { return TypeAlertRaised }

// SessionHeld stops a session's tool calls until it is released.
type SessionHeld struct {
	Reason       string `json:"reason"`
	RuleID       string `json:"rule_id,omitempty"`
	AlertEventID string `json:"alert_event_id,omitempty"`
	By           Actor  `json:"by"`
}

// EventType implements Payload.
func (SessionHeld) EventType() string { return TypeSessionHeld }

// SessionReleased lifts a hold.
type SessionReleased struct {
	Reason      string `json:"reason"`
	HeldEventID string `json:"held_event_id,omitempty"`
	By          Actor  `json:"by"`
}

// EventType implements Payload.
func (SessionReleased) EventType() string { return TypeSessionReleased }

// ProcessExec records one program started inside a sandbox: the supervisor
// traced the exec and the runner ruled on it before the program ran. The
// envelope's ToolCallID names the call whose process tree made the exec,
// ApprovalID the approval that authorised it, ParentEventID (optionally)
// the process.exec of the parent process.
type ProcessExec struct {
	// PID and PPID are in the sandbox's PID namespace; PPID is 0 when the
	// parent is outside it.
	PID  int `json:"pid"`
	PPID int `json:"ppid"`
	// Argv is the real argv, argv[0] first, bounded by BoundArgv;
	// ArgvTruncated says BoundArgv cut it.
	Argv          []string `json:"argv"`
	ArgvTruncated bool     `json:"argv_truncated"`
	// Exe is the resolved path of the executable; Cwd the process's
	// working directory (empty when it could not be read).
	Exe        string     `json:"exe"`
	Cwd        string     `json:"cwd,omitempty"`
	Decision   Decision   `json:"decision"`
	ReasonCode ReasonCode `json:"reason_code"`
	// RuleID is the matched exec rule; empty when none matched.
	RuleID string `json:"rule_id,omitempty"`
	// Background: the exec was made by a process that outlived the call
	// that started it.
	Background bool `json:"background"`
	// Root: this is the call's own top process, not a descendant.
	Root bool `json:"root"`
}

// EventType implements Payload.
func (ProcessExec) EventType() string { return TypeProcessExec }
