package store

import (
	"fmt"
	"strconv"

	"github.com/agentaudit/agentaudit/internal/events"
)

// flattenTyped copies the payload fields compliance filters on into r
// through DecodePayload: the reference flattenPayload is compared with.
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
	default:
		return fmt.Errorf("no row mapping for payload %T", p)
	}
	return nil
}
