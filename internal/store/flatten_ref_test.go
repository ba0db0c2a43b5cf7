package store

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/agentaudit/agentaudit/internal/events"
)

// flattenTyped copies the payload fields compliance filters on into r from
// a typed payload (see typedRow): the reference flattenPayload is compared
// with.
func flattenTyped(r *EventRow, p events.Payload) error {
	var err error
	switch p := p.(type) {
	case *events.SessionStarted:
		r.Workspace, r.Image, r.SandboxProfile, r.SandboxProfileSHA256 = p.Workspace, p.Image, p.SandboxProfile, p.SandboxProfileSHA256
		r.Operator, r.Mode = p.Operator, p.Mode
		if p.Client != nil {
			r.ClientName = p.Client.Name
		}
	case *events.SessionEnded:
		r.Reason, r.DurationMS, r.Error = p.Reason, p.DurationMS, p.Error
	case *events.ToolCallRequested:
		a := p.Arguments
		r.ToolName, r.Cwd, r.Path, r.URL, r.ArgumentsSHA256 = p.ToolName, a.Cwd, a.Path, a.URL, p.ArgumentsSHA256
		r.Command = bound(commandLine(a.Argv, a.Command), MaxCommandLen)
		if m := p.ClientMeta; m != nil {
			r.AgentCallID, r.ConversationID, r.PromptID = m.CallID, m.SessionID, m.TurnID
			if r.AgentCallID == "" {
				r.AgentCallID = m.ToolUseID
			}
			if r.ConversationID == "" {
				r.ConversationID = m.ThreadID
			}
		}
	case *events.PolicyDecision:
		r.Decision, r.ReasonCode, r.RuleID = string(p.Decision), string(p.ReasonCode), p.RuleID
		r.ApprovalMode, r.Risk, r.Reason = string(p.ApprovalMode), string(p.Risk), p.Justification
	case *events.ApprovalRequested:
		if r.ApprovalID == "" {
			// By convention (envelope.json) an approval's id is the event id
			// of its request; filling it in lets views join request and
			// decision on approval_id alone.
			r.ApprovalID = strconv.FormatUint(r.EventID, 10)
		}
		r.Kind, r.Summary, r.Reason, r.ReasonCode, r.RuleID = p.Kind, p.Summary, p.Reason, string(p.ReasonCode), p.RuleID
		r.Risk, r.Requester, r.ExpiresAt = string(p.Risk), p.Requester.ID, p.ExpiresAt.Time
		if r.RefEventID, err = optID(p.RequestEventID); err != nil {
			return fmt.Errorf("request_event_id: %w", err)
		}
	case *events.ApprovalDecided:
		r.ApprovalOutcome, r.ReasonCode, r.ApprovalScope = string(p.Decision), string(p.ReasonCode), string(p.Scope)
		r.Approver, r.Reason, r.DecidedAt, r.KeyID = p.Approver.ID, p.Comment, p.DecidedAt.Time, p.KeyID
	case *events.ToolCallCompleted:
		r.ExitCode, r.DurationMS, r.TimedOut, r.KilledReason = int32(p.ExitCode), p.DurationMS, p.TimedOut, p.KilledReason
		r.StdoutLength, r.StdoutSHA256 = p.Stdout.Length, p.Stdout.SHA256
		r.StderrLength, r.StderrSHA256 = p.Stderr.Length, p.Stderr.SHA256
		r.ReasonCode, r.Error = string(p.ReasonCode), p.Error
		r.Signal, r.ProcessCount = uint8(p.Signal), p.LeftoversKilled
		if p.Rusage != nil {
			r.UserMS, r.SystemMS, r.MaxRSSKB = p.Rusage.UserMS, p.Rusage.SystemMS, p.Rusage.MaxRSSKB
		}
	case *events.NetEgress:
		r.EgressPhase, r.Host, r.Port, r.ResolvedIP, r.Method, r.SNI = p.Phase, p.Host, p.Port, p.ResolvedIP, p.Method, p.SNI
		r.Decision, r.ReasonCode, r.RuleID, r.StatusCode = string(p.Decision), string(p.ReasonCode), p.RuleID, p.StatusCode
		r.BytesSent, r.BytesReceived, r.DurationMS = p.BytesSent, p.BytesReceived, p.DurationMS
	case *events.SandboxViolation:
		r.Kind, r.Summary, r.Path, r.Syscall, r.ReasonCode = p.Kind, p.Detail, p.Path, p.Syscall, string(p.ReasonCode)
		r.PID, r.ProcessCount, r.Command = uint32(p.PID), p.Count, bound(commandLine(p.Argv, ""), MaxCommandLen)
	case *events.ProcessExec:
		r.PID, r.PPID, r.Exe, r.Cwd = uint32(p.PID), uint32(p.PPID), p.Exe, p.Cwd
		r.Command = bound(commandLine(p.Argv, ""), MaxCommandLen)
		r.Decision, r.ReasonCode, r.RuleID = string(p.Decision), string(p.ReasonCode), p.RuleID
		r.Background, r.RootProcess = p.Background, p.Root
	case *events.AlertRaised:
		r.RuleID, r.RuleVersion, r.Severity, r.GroupKey = p.RuleID, p.RuleVersion, string(p.Severity), p.GroupKey
		r.AlertCount, r.Suppressed, r.FirstSeen, r.LastSeen = p.Count, p.Suppressed, p.FirstSeen.Time, p.LastSeen.Time
		r.Summary, r.AlertAction = p.Message, p.Action
		r.MatchedEventIDs = make([]uint64, 0, len(p.MatchedEventIDs))
		for _, s := range p.MatchedEventIDs {
			id, err := events.ParseID(s)
			if err != nil {
				return fmt.Errorf("matched_event_ids: %w", err)
			}
			r.MatchedEventIDs = append(r.MatchedEventIDs, uint64(id))
		}
	case *events.SessionHeld:
		r.Reason, r.RuleID, r.ByID = p.Reason, p.RuleID, p.By.ID
		if r.RefEventID, err = optID(p.AlertEventID); err != nil {
			return fmt.Errorf("alert_event_id: %w", err)
		}
	case *events.SessionReleased:
		r.Reason, r.ByID = p.Reason, p.By.ID
		if r.RefEventID, err = optID(p.HeldEventID); err != nil {
			return fmt.Errorf("held_event_id: %w", err)
		}
	case *events.AlertTriaged:
		r.TriageAction, r.RuleID, r.Assignee, r.Reason, r.ByID = string(p.Action), p.RuleID, p.Assignee, p.Comment, p.By.ID
		r.DecidedAt, r.KeyID = p.TriagedAt.Time, p.KeyID
		if r.RefEventID, err = optID(p.AlertEventID); err != nil {
			return fmt.Errorf("alert_event_id: %w", err)
		}
	case *events.RuleSuppressed:
		r.RuleID, r.ScopeKind, r.ScopeValue, r.Reason, r.ByID = p.RuleID, string(p.Scope.Kind), p.Scope.Value, p.Comment, p.By.ID
		r.ExpiresAt, r.DecidedAt, r.KeyID = p.ExpiresAt.Time, p.SuppressedAt.Time, p.KeyID
		if r.RefEventID, err = optID(p.AlertEventID); err != nil {
			return fmt.Errorf("alert_event_id: %w", err)
		}
	case *events.RuleUnsuppressed:
		r.RuleID, r.Reason, r.ByID, r.DecidedAt, r.KeyID = p.RuleID, p.Comment, p.By.ID, p.UnsuppressedAt.Time, p.KeyID
		if r.RefEventID, err = optID(p.SuppressionEventID); err != nil {
			return fmt.Errorf("suppression_event_id: %w", err)
		}
	case *events.AgentPrompt:
		refCommon(r, p.Source, p.EventName, p.ConversationID, p.PromptID, p.Operator)
		r.TextLength = p.Length
		refText(r, p.Text)
	case *events.AgentResponse:
		refCommon(r, p.Source, p.EventName, p.ConversationID, p.PromptID, p.Operator)
		r.Model, r.TextLength = p.Model, p.Length
		refText(r, p.Text)
	case *events.AgentModelCall:
		refCommon(r, p.Source, p.EventName, p.ConversationID, p.PromptID, p.Operator)
		r.Kind, r.Model, r.InputTokens, r.OutputTokens = p.Kind, p.Model, p.InputTokens, p.OutputTokens
		r.CacheReadTokens, r.CacheCreationTokens, r.ReasoningTokens, r.ToolTokens = p.CacheReadTokens, p.CacheCreationTokens, p.ReasoningTokens, p.ToolTokens
		r.CostMicroUSD, r.DurationMS, r.URL, r.Error = p.CostMicroUSD, p.DurationMS, p.Endpoint, p.Error
		r.StatusCode, r.Reason = agentStatus(p.Status)
		if p.Status == "" {
			r.Reason = ""
		}
	case *events.AgentToolDecision:
		refCommon(r, p.Source, p.EventName, p.ConversationID, p.PromptID, p.Operator)
		r.ToolName, r.AgentCallID, r.AgentDecision, r.Kind, r.DecisionSource = p.ToolName, p.CallID, p.Decision, p.Verdict, p.DecisionSource
		r.Command, r.Path = bound(p.Command, MaxCommandLen), p.Path
		refPolicy(r, p.Policy)
	case *events.AgentToolResult:
		refCommon(r, p.Source, p.EventName, p.ConversationID, p.PromptID, p.Operator)
		r.ToolName, r.AgentCallID, r.AgentDecision, r.DecisionSource = p.ToolName, p.CallID, p.Decision, p.DecisionSource
		r.Command, r.Path, r.Success, r.DurationMS, r.Error = bound(p.Command, MaxCommandLen), p.Path, p.Success, p.DurationMS, p.Error
		refText(r, p.Arguments)
		if p.Output != nil {
			r.StdoutLength, r.StdoutSHA256 = p.Output.Length, p.Output.SHA256
		}
		refPolicy(r, p.Policy)
	case *events.AgentSession:
		refCommon(r, p.Source, p.EventName, p.ConversationID, p.PromptID, p.Operator)
		r.Model, r.ApprovalPolicy, r.SandboxPolicy, r.ClientName = p.Model, p.ApprovalPolicy, p.SandboxPolicy, p.Originator
		r.Summary = bound(strings.Join(p.MCPServers, ","), MaxCommandLen)
	case *events.AgentOther:
		refCommon(r, p.Source, p.EventName, p.ConversationID, p.PromptID, p.Operator)
		r.Summary = bound(strings.Join(p.Attributes, " "), MaxCommandLen)
	default:
		return fmt.Errorf("no row mapping for payload %T", p)
	}
	return nil
}

func refCommon(r *EventRow, source, name, conv, prompt, operator string) {
	r.AgentSource, r.AgentEvent, r.ConversationID, r.PromptID, r.Operator = source, name, conv, prompt, operator
}

func refText(r *EventRow, t *events.AgentText) {
	if t != nil {
		r.TextMode, r.TextLength, r.TextSHA256, r.Text = t.Mode, t.Length, t.SHA256, t.Text
	}
}

func refPolicy(r *EventRow, p *events.AgentPolicy) {
	if p == nil {
		return
	}
	r.Decision, r.ReasonCode, r.RuleID = string(p.Decision), string(p.ReasonCode), p.RuleID
	if r.PolicyID == "" {
		r.PolicyID = p.PolicyID
	}
	if r.PolicySHA256 == "" {
		r.PolicySHA256 = p.PolicySHA256
	}
}
