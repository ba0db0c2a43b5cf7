package store

import (
	"fmt"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/agentaudit/agentaudit/internal/events"
)

// MaxCommandLen bounds the flattened command column; the whole arguments
// stay in raw.
const MaxCommandLen = 4096

// Source is where the ingester read an event: its Kafka position.
type Source struct {
	Topic     string
	Partition int32
	Offset    int64
}

// EventRow is one row of the events table. Field order is column order
// (see EventColumns); payload fields a type does not have stay zero.
type EventRow struct {
	EventID       uint64
	EventType     string
	SchemaVersion string
	EventTime     time.Time // stored to the second; EventTimeUS holds the rest
	EventTimeUS   uint32
	Tenant        string
	SessionID     string
	RunnerID      string
	Seq           uint64
	PrevHash      string
	Hash          string
	ActorType     string
	ActorID       string
	AgentName     string
	AgentVersion  string
	ToolCallID    string
	ApprovalID    string
	ParentEventID uint64
	TraceID       string
	PolicyID      string
	PolicySHA256  string

	ToolName             string
	Command              string
	Cwd                  string
	Path                 string
	URL                  string
	ArgumentsSHA256      string
	Decision             string
	ReasonCode           string
	RuleID               string
	ApprovalMode         string
	Risk                 string
	Kind                 string
	Reason               string
	Summary              string
	Requester            string
	ApprovalOutcome      string
	ApprovalScope        string
	Approver             string
	ExpiresAt            time.Time
	DecidedAt            time.Time
	KeyID                string
	EgressPhase          string
	Host                 string
	Port                 uint16
	ResolvedIP           string
	Method               string
	SNI                  string
	StatusCode           uint16
	BytesSent            uint64
	BytesReceived        uint64
	ExitCode             int32
	DurationMS           uint64
	TimedOut             bool
	KilledReason         string
	StdoutLength         uint64
	StdoutSHA256         string
	StderrLength         uint64
	StderrSHA256         string
	Error                string
	Syscall              string
	Severity             string
	RuleVersion          string
	GroupKey             string
	AlertCount           uint64
	Suppressed           uint64
	AlertAction          string
	FirstSeen            time.Time
	LastSeen             time.Time
	MatchedEventIDs      []uint64
	RefEventID           uint64
	ByID                 string
	Workspace            string
	Image                string
	SandboxProfile       string
	SandboxProfileSHA256 string
	Operator             string
	Mode                 string
	ClientName           string
	// Migration 0011: process.exec, and the supervisor's fields of
	// tool_call.completed and sandbox.violation.
	PID          uint32
	PPID         uint32
	Exe          string
	Background   bool
	RootProcess  bool
	Signal       uint8
	UserMS       uint64
	SystemMS     uint64
	MaxRSSKB     uint64
	ProcessCount uint64
	// Migration 0012: agent-native telemetry (agent.*), and the agent's
	// correlation of tool_call.requested (client_meta).
	AgentSource         string
	AgentEvent          string
	ConversationID      string
	PromptID            string
	AgentCallID         string
	Model               string
	InputTokens         uint64
	OutputTokens        uint64
	CacheReadTokens     uint64
	CacheCreationTokens uint64
	ReasoningTokens     uint64
	ToolTokens          uint64
	CostMicroUSD        uint64
	TextMode            string
	TextLength          uint64
	TextSHA256          string
	Text                string
	AgentDecision       string
	DecisionSource      string
	Success             bool
	ApprovalPolicy      string
	SandboxPolicy       string

	// Migration 0014: alert triage (alert.triaged, rule.suppressed,
	// rule.unsuppressed).
	TriageAction string
	Assignee     string
	ScopeKind    string
	ScopeValue   string

	Raw        []byte
	Source     Source
	IngestedAt time.Time // zero: InsertEvents sets the insert time
}

// eventColumns is the events table's insert column list, in EventRow order.
var eventColumns = []string{
	"event_id", "event_type", "schema_version", "event_time", "event_time_us",
	"tenant", "session_id", "runner_id", "seq", "prev_hash", "hash",
	"actor_type", "actor_id", "agent_name", "agent_version",
	"tool_call_id", "approval_id", "parent_event_id", "trace_id", "policy_id", "policy_sha256",
	"tool_name", "command", "cwd", "path", "url", "arguments_sha256",
	"decision", "reason_code", "rule_id", "approval_mode", "risk", "kind", "reason", "summary",
	"requester", "approval_outcome", "approval_scope", "approver", "expires_at", "decided_at", "key_id",
	"egress_phase", "host", "port", "resolved_ip", "method", "sni", "status_code", "bytes_sent", "bytes_received",
	"exit_code", "duration_ms", "timed_out", "killed_reason",
	"stdout_length", "stdout_sha256", "stderr_length", "stderr_sha256", "error", "syscall",
	"severity", "rule_version", "group_key", "alert_count", "suppressed", "alert_action",
	"first_seen", "last_seen", "matched_event_ids", "ref_event_id", "by_id",
	"workspace", "image", "sandbox_profile", "sandbox_profile_sha256", "operator", "mode", "client_name",
	"pid", "ppid", "exe", "background", "root_process", "signal", "user_ms", "system_ms", "max_rss_kb", "process_count",
	"agent_source", "agent_event", "conversation_id", "prompt_id", "agent_call_id", "model",
	"input_tokens", "output_tokens", "cache_read_tokens", "cache_creation_tokens", "reasoning_tokens", "tool_tokens", "cost_micro_usd",
	"text_mode", "text_length", "text_sha256", "text", "agent_decision", "decision_source", "success", "approval_policy", "sandbox_policy",
	"triage_action", "assignee", "scope_kind", "scope_value",
	"raw", "source_topic", "source_partition", "source_offset", "ingested_at",
}

// EventColumns returns the columns InsertEvents writes, in order.
func EventColumns() []string { return append([]string(nil), eventColumns...) }

// values returns r's column values in eventColumns order, with times that
// DateTime can hold (the zero time becomes the Unix epoch).
func (r *EventRow) values(now time.Time) []any {
	ing := r.IngestedAt
	if ing.IsZero() {
		ing = now
	}
	ids := r.MatchedEventIDs
	if ids == nil {
		ids = []uint64{}
	}
	return []any{
		r.EventID, r.EventType, r.SchemaVersion, dt(r.EventTime), r.EventTimeUS,
		r.Tenant, r.SessionID, r.RunnerID, r.Seq, r.PrevHash, r.Hash,
		r.ActorType, r.ActorID, r.AgentName, r.AgentVersion,
		r.ToolCallID, r.ApprovalID, r.ParentEventID, r.TraceID, r.PolicyID, r.PolicySHA256,
		r.ToolName, r.Command, r.Cwd, r.Path, r.URL, r.ArgumentsSHA256,
		r.Decision, r.ReasonCode, r.RuleID, r.ApprovalMode, r.Risk, r.Kind, r.Reason, r.Summary,
		r.Requester, r.ApprovalOutcome, r.ApprovalScope, r.Approver, dt(r.ExpiresAt), dt(r.DecidedAt), r.KeyID,
		r.EgressPhase, r.Host, r.Port, r.ResolvedIP, r.Method, r.SNI, r.StatusCode, r.BytesSent, r.BytesReceived,
		r.ExitCode, r.DurationMS, b2u(r.TimedOut), r.KilledReason,
		r.StdoutLength, r.StdoutSHA256, r.StderrLength, r.StderrSHA256, r.Error, r.Syscall,
		r.Severity, r.RuleVersion, r.GroupKey, r.AlertCount, r.Suppressed, r.AlertAction,
		dt(r.FirstSeen), dt(r.LastSeen), ids, r.RefEventID, r.ByID,
		r.Workspace, r.Image, r.SandboxProfile, r.SandboxProfileSHA256, r.Operator, r.Mode, r.ClientName,
		r.PID, r.PPID, r.Exe, b2u(r.Background), b2u(r.RootProcess), r.Signal, r.UserMS, r.SystemMS, r.MaxRSSKB, r.ProcessCount,
		r.AgentSource, r.AgentEvent, r.ConversationID, r.PromptID, r.AgentCallID, r.Model,
		r.InputTokens, r.OutputTokens, r.CacheReadTokens, r.CacheCreationTokens, r.ReasoningTokens, r.ToolTokens, r.CostMicroUSD,
		r.TextMode, r.TextLength, r.TextSHA256, r.Text, r.AgentDecision, r.DecisionSource, b2u(r.Success), r.ApprovalPolicy, r.SandboxPolicy,
		r.TriageAction, r.Assignee, r.ScopeKind, r.ScopeValue,
		string(r.Raw), r.Source.Topic, r.Source.Partition, r.Source.Offset, dt(ing),
	}
}

var epoch = time.Unix(0, 0).UTC()

func dt(t time.Time) time.Time {
	if t.Before(epoch) {
		return epoch
	}
	return t.UTC()
}

func b2u(b bool) uint8 {
	if b {
		return 1
	}
	return 0
}

// RowFromEvent flattens env into a row. raw is the event's canonical bytes
// as received (what the hash covers); nil encodes env canonically. It fails
// with ErrEvent when an id is malformed or the payload does not decode.
// The row's strings share memory with env (its payload among it) and raw:
// it is valid while they are unchanged; EventBlock.Append copies it.
func RowFromEvent(env *events.Envelope, raw []byte, src Source) (EventRow, error) {
	id, err := events.ParseID(env.EventID)
	if err != nil {
		return EventRow{}, fmt.Errorf("%w: event_id: %w", ErrEvent, err)
	}
	t := env.EventTime.UTC()
	r := EventRow{
		EventID:       uint64(id),
		EventType:     env.EventType,
		SchemaVersion: env.SchemaVersion,
		EventTime:     t.Truncate(time.Second),
		EventTimeUS:   uint32(t.Nanosecond() / 1000),
		Tenant:        env.Tenant,
		SessionID:     env.SessionID,
		RunnerID:      env.RunnerID,
		Seq:           env.Seq,
		PrevHash:      env.PrevHash,
		Hash:          env.Hash,
		ActorType:     string(env.Actor.Type),
		ActorID:       env.Actor.ID,
		ToolCallID:    env.ToolCallID,
		ApprovalID:    env.ApprovalID,
		TraceID:       env.TraceID,
		Raw:           raw,
		Source:        src,
	}
	if env.Agent != nil {
		r.AgentName, r.AgentVersion = env.Agent.Name, env.Agent.Version
	}
	if env.Policy != nil {
		r.PolicyID, r.PolicySHA256 = env.Policy.ID, env.Policy.SHA256
	}
	if r.ParentEventID, err = optID(env.ParentEventID); err != nil {
		return EventRow{}, fmt.Errorf("%w: parent_event_id: %w", ErrEvent, err)
	}
	if raw == nil {
		if r.Raw, err = events.Marshal(env); err != nil {
			return EventRow{}, fmt.Errorf("%w: %w", ErrEvent, err)
		}
	}
	if err := flattenPayload(&r, env.EventType, env.Payload); err != nil {
		return EventRow{}, fmt.Errorf("%w: %s: %w", ErrEvent, env.EventType, err)
	}
	return r, nil
}

func optID(s string) (uint64, error) {
	if s == "" {
		return 0, nil
	}
	id, err := events.ParseID(s)
	return uint64(id), err
}

// commandLine renders argv as one shell-quoted line, or returns command
// when there is no argv.
func commandLine(argv []string, command string) string {
	if len(argv) == 0 {
		return command
	}
	var b strings.Builder
	for i, a := range argv {
		if i > 0 {
			b.WriteByte(' ')
		}
		b.WriteString(shellQuote(a))
	}
	return b.String()
}

// shellQuote quotes a for a POSIX shell when it holds anything but plain
// characters, so a compliance reader sees argument boundaries.
func shellQuote(a string) string {
	if a == "" {
		return "''"
	}
	if strings.IndexFunc(a, func(c rune) bool {
		return !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.ContainsRune("-_./=:,+@%", c))
	}) < 0 {
		return a
	}
	return "'" + strings.ReplaceAll(a, "'", `'\''`) + "'"
}

// bound cuts s to at most n bytes without splitting a UTF-8 sequence.
func bound(s string, n int) string {
	if len(s) <= n {
		return s
	}
	s = s[:n]
	for len(s) > 0 {
		if r, size := utf8.DecodeLastRuneInString(s); r != utf8.RuneError || size > 1 {
			break
		}
		s = s[:len(s)-1]
	}
	return s
}
