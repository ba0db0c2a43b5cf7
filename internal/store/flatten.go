package store

import (
	"errors"
	"fmt"
	"strconv"
	"time"
	"unsafe"

	"github.com/agentaudit/agentaudit/internal/events"
)

// The payload of a decoded event has passed its schema, so flattening reads
// it with the events package's own parser (events.ReadJSON) instead of
// encoding/json, which was most of RowFromEvent's time. The row's strings
// point into the payload, as RowFromEvent documents: a copy of every
// payload was a third of a kilobyte of garbage per event in the ingester,
// which copies the row into its block at once. Only strings with escapes
// get their own memory. flattenTyped (DecodePayloadFast + a type switch,
// in the tests) is the reference this is compared with.

var errPayload = errors.New("malformed payload")

// flattenPayload copies the payload fields compliance filters on into r:
// familyOf picks the event type's flattening, one function per event
// type family, and each payload member goes to it.
func flattenPayload(r *EventRow, eventType string, payload []byte) error {
	fam := familyOf(eventType)
	switch fam {
	case famUnknown:
		return fmt.Errorf("%w: %q", events.ErrUnknownEventType, eventType)
	case famApprovalRequested:
		if r.ApprovalID == "" {
			// See flattenTyped: an approval's id is its request's event id.
			r.ApprovalID = strconv.FormatUint(r.EventID, 10)
		}
	case famAlertRaised:
		r.MatchedEventIDs = []uint64{}
	}
	var err error
	if perr := events.ReadJSON(payload, func(root events.JSONValue) error {
		err = members(root, func(k string, v events.JSONValue) error { return fam.member(r, k, v) })
		return nil
	}); perr != nil {
		return fmt.Errorf("%w: %w", errPayload, perr)
	}
	return err
}

// family is the flattening an event type's payload takes. It is a number
// rather than a function value so that member calls its function directly:
// a row passed through a function value would escape to the heap, and
// RowFromEvent's with it, a large allocation per event in the ingester.
type family uint8

const (
	famUnknown family = iota
	famSessionStarted
	famSessionEnded
	famSessionHeld
	famSessionReleased
	famToolCallRequested
	famToolCallCompleted
	famPolicyDecision
	famApprovalRequested
	famApprovalDecided
	famNetEgress
	famSandboxViolation
	famProcessExec
	famAlertRaised
	famTriage
	famAgentPromptResponse
	famAgentModelCall
	famAgentTool
	famAgentSession
	famAgentOther
)

func familyOf(eventType string) family {
	switch eventType {
	case events.TypeSessionStarted:
		return famSessionStarted
	case events.TypeSessionEnded:
		return famSessionEnded
	case events.TypeSessionHeld:
		return famSessionHeld
	case events.TypeSessionReleased:
		return famSessionReleased
	case events.TypeToolCallRequested:
		return famToolCallRequested
	case events.TypeToolCallCompleted:
		return famToolCallCompleted
	case events.TypePolicyDecision:
		return famPolicyDecision
	case events.TypeApprovalRequested:
		return famApprovalRequested
	case events.TypeApprovalDecided:
		return famApprovalDecided
	case events.TypeNetEgress:
		return famNetEgress
	case events.TypeSandboxViolation:
		return famSandboxViolation
	case events.TypeProcessExec:
		return famProcessExec
	case events.TypeAlertRaised:
		return famAlertRaised
	case events.TypeAlertTriaged, events.TypeRuleSuppressed, events.TypeRuleUnsuppressed:
		return famTriage
	case events.TypeAgentPrompt, events.TypeAgentResponse:
		return famAgentPromptResponse
	case events.TypeAgentModelCall:
		return famAgentModelCall
	case events.TypeAgentToolDecision, events.TypeAgentToolResult:
		return famAgentTool
	case events.TypeAgentSession:
		return famAgentSession
	case events.TypeAgentOther:
		return famAgentOther
	}
	return famUnknown
}

// member flattens one top-level member of a payload of family f into r. An
// error refuses the row; the members after it are still read, so the error
// reported is the first.
func (f family) member(r *EventRow, k string, v events.JSONValue) error {
	switch f {
	case famSessionStarted:
		return sessionStarted(r, k, v)
	case famSessionEnded:
		return sessionEnded(r, k, v)
	case famSessionHeld:
		return sessionHeld(r, k, v)
	case famSessionReleased:
		return sessionReleased(r, k, v)
	case famToolCallRequested:
		return toolCallRequested(r, k, v)
	case famToolCallCompleted:
		return toolCallCompleted(r, k, v)
	case famPolicyDecision:
		return policyDecision(r, k, v)
	case famApprovalRequested:
		return approvalRequested(r, k, v)
	case famApprovalDecided:
		return approvalDecided(r, k, v)
	case famNetEgress:
		return netEgress(r, k, v)
	case famSandboxViolation:
		return sandboxViolation(r, k, v)
	case famProcessExec:
		return processExec(r, k, v)
	case famAlertRaised:
		return alertRaised(r, k, v)
	case famTriage:
		return flattenTriage(r, k, v)
	case famAgentPromptResponse:
		return agentPromptResponse(r, k, v)
	case famAgentModelCall:
		return agentModelCall(r, k, v)
	case famAgentTool:
		return agentTool(r, k, v)
	case famAgentSession:
		return agentSession(r, k, v)
	case famAgentOther:
		return agentOther(r, k, v)
	}
	return nil
}

// The readers below parse a value into a row field; they set it even when
// they fail, as the row is refused then.

// members calls f with each member of the object obj and returns the first
// error f returned, or errPayload when obj is not an object.
func members(obj events.JSONValue, f func(k string, v events.JSONValue) error) error {
	var first error
	if !obj.Object(func(k string, v events.JSONValue) {
		if err := f(k, v); err != nil && first == nil {
			first = err
		}
	}) {
		return errPayload
	}
	return first
}

// setUint parses an unsigned integer that fits dst.
func setUint[T ~uint8 | ~uint16 | ~uint32 | ~uint64](dst *T, v events.JSONValue) error {
	n, err := strconv.ParseUint(v.Raw(), 10, int(unsafe.Sizeof(*dst))*8)
	*dst = T(n)
	return err
}

func setTime(dst *time.Time, v events.JSONValue) error {
	t, err := time.Parse(events.TimeLayout, v.Str())
	*dst = t
	return err
}

// setID reads an optional event id.
func setID(dst *uint64, v events.JSONValue) error {
	n, err := optID(v.Str())
	*dst = n
	return err
}

func stringArray(v events.JSONValue) ([]string, error) {
	if a, ok := v.Strings(); ok {
		return a, nil
	}
	return nil, errPayload
}

// argvLine renders an argv array as the row's command.
func argvLine(dst *string, v events.JSONValue) error {
	a, err := stringArray(v)
	*dst = bound(commandLine(a, ""), MaxCommandLen)
	return err
}

func sessionStarted(r *EventRow, k string, v events.JSONValue) error {
	switch k {
	case "workspace":
		r.Workspace = v.Str()
	case "image":
		r.Image = v.Str()
	case "sandbox_profile":
		r.SandboxProfile = v.Str()
	case "sandbox_profile_sha256":
		r.SandboxProfileSHA256 = v.Str()
	case "operator":
		r.Operator = v.Str()
	case "mode":
		r.Mode = v.Str()
	case "client":
		r.ClientName = v.Field("name").Str()
	}
	return nil
}

func sessionEnded(r *EventRow, k string, v events.JSONValue) error {
	switch k {
	case "reason":
		r.Reason = v.Str()
	case "duration_ms":
		return setUint(&r.DurationMS, v)
	case "error":
		r.Error = v.Str()
	}
	return nil
}

func sessionHeld(r *EventRow, k string, v events.JSONValue) error {
	switch k {
	case "reason":
		r.Reason = v.Str()
	case "rule_id":
		r.RuleID = v.Str()
	case "by":
		r.ByID = v.Field("id").Str()
	case "alert_event_id":
		return setID(&r.RefEventID, v)
	}
	return nil
}

func sessionReleased(r *EventRow, k string, v events.JSONValue) error {
	switch k {
	case "reason":
		r.Reason = v.Str()
	case "by":
		r.ByID = v.Field("id").Str()
	case "held_event_id":
		return setID(&r.RefEventID, v)
	}
	return nil
}

func toolCallRequested(r *EventRow, k string, v events.JSONValue) error {
	switch k {
	case "tool_name":
		r.ToolName = v.Str()
	case "arguments_sha256":
		r.ArgumentsSHA256 = v.Str()
	case "arguments":
		return toolArguments(r, v)
	case "client_meta":
		clientMeta(r, v)
	}
	return nil
}

// toolArguments flattens tool_call.requested's arguments: where the call
// runs and what, argv (shell-quoted) before command.
func toolArguments(r *EventRow, obj events.JSONValue) error {
	var argv []string
	var command string
	err := members(obj, func(k string, v events.JSONValue) error {
		var err error
		switch k {
		case "cwd":
			r.Cwd = v.Str()
		case "path":
			r.Path = v.Str()
		case "url":
			r.URL = v.Str()
		case "command":
			command = v.Str()
		case "argv":
			argv, err = stringArray(v)
		}
		return err
	})
	r.Command = bound(commandLine(argv, command), MaxCommandLen)
	return err
}

// clientMeta flattens tool_call.requested's client_meta: the agent's call
// id (Codex callId, Claude Code tool_use_id), conversation and turn, the
// join keys to agent.* events.
func clientMeta(r *EventRow, obj events.JSONValue) {
	var callID, useID, sess, thread string
	obj.Object(func(k string, v events.JSONValue) {
		switch k {
		case "call_id":
			callID = v.Str()
		case "tool_use_id":
			useID = v.Str()
		case "session_id":
			sess = v.Str()
		case "thread_id":
			thread = v.Str()
		case "turn_id":
			r.PromptID = v.Str()
		}
	})
	r.AgentCallID, r.ConversationID = callID, sess
	if r.AgentCallID == "" {
		r.AgentCallID = useID
	}
	if r.ConversationID == "" {
		r.ConversationID = thread
	}
}

func toolCallCompleted(r *EventRow, k string, v events.JSONValue) error {
	switch k {
	case "exit_code":
		n, err := strconv.ParseInt(v.Raw(), 10, 32)
		r.ExitCode = int32(n)
		return err
	case "duration_ms":
		return setUint(&r.DurationMS, v)
	case "timed_out":
		r.TimedOut = v.Raw() == "true"
	case "killed_reason":
		r.KilledReason = v.Str()
	case "stdout":
		return output(v, &r.StdoutLength, &r.StdoutSHA256)
	case "stderr":
		return output(v, &r.StderrLength, &r.StderrSHA256)
	case "reason_code":
		r.ReasonCode = v.Str()
	case "error":
		r.Error = v.Str()
	case "signal":
		return setUint(&r.Signal, v)
	case "rusage":
		return members(v, func(k string, v events.JSONValue) error {
			switch k {
			case "user_ms":
				return setUint(&r.UserMS, v)
			case "system_ms":
				return setUint(&r.SystemMS, v)
			case "max_rss_kb":
				return setUint(&r.MaxRSSKB, v)
			}
			return nil
		})
	case "leftovers_killed":
		return setUint(&r.ProcessCount, v)
	}
	return nil
}

// output flattens an output summary (length and sha256).
func output(obj events.JSONValue, length *uint64, sum *string) error {
	return members(obj, func(k string, v events.JSONValue) error {
		switch k {
		case "length":
			return setUint(length, v)
		case "sha256":
			*sum = v.Str()
		}
		return nil
	})
}

func policyDecision(r *EventRow, k string, v events.JSONValue) error {
	switch k {
	case "decision":
		r.Decision = v.Str()
	case "reason_code":
		r.ReasonCode = v.Str()
	case "rule_id":
		r.RuleID = v.Str()
	case "approval_mode":
		r.ApprovalMode = v.Str()
	case "risk":
		r.Risk = v.Str()
	case "justification":
		r.Reason = v.Str()
	}
	return nil
}

func approvalRequested(r *EventRow, k string, v events.JSONValue) error {
	switch k {
	case "kind":
		r.Kind = v.Str()
	case "summary":
		r.Summary = v.Str()
	case "reason":
		r.Reason = v.Str()
	case "reason_code":
		r.ReasonCode = v.Str()
	case "rule_id":
		r.RuleID = v.Str()
	case "risk":
		r.Risk = v.Str()
	case "requester":
		r.Requester = v.Field("id").Str()
	case "expires_at":
		return setTime(&r.ExpiresAt, v)
	case "request_event_id":
		return setID(&r.RefEventID, v)
	}
	return nil
}

func approvalDecided(r *EventRow, k string, v events.JSONValue) error {
	switch k {
	case "decision":
		r.ApprovalOutcome = v.Str()
	case "reason_code":
		r.ReasonCode = v.Str()
	case "scope":
		r.ApprovalScope = v.Str()
	case "approver":
		r.Approver = v.Field("id").Str()
	case "comment":
		r.Reason = v.Str()
	case "decided_at":
		return setTime(&r.DecidedAt, v)
	case "key_id":
		r.KeyID = v.Str()
	}
	return nil
}

func netEgress(r *EventRow, k string, v events.JSONValue) error {
	switch k {
	case "phase":
		r.EgressPhase = v.Str()
	case "host":
		r.Host = v.Str()
	case "port":
		return setUint(&r.Port, v)
	case "resolved_ip":
		r.ResolvedIP = v.Str()
	case "method":
		r.Method = v.Str()
	case "sni":
		r.SNI = v.Str()
	case "decision":
		r.Decision = v.Str()
	case "reason_code":
		r.ReasonCode = v.Str()
	case "rule_id":
		r.RuleID = v.Str()
	case "status_code":
		return setUint(&r.StatusCode, v)
	case "bytes_sent":
		return setUint(&r.BytesSent, v)
	case "bytes_received":
		return setUint(&r.BytesReceived, v)
	case "duration_ms":
		return setUint(&r.DurationMS, v)
	}
	return nil
}

func sandboxViolation(r *EventRow, k string, v events.JSONValue) error {
	switch k {
	case "kind":
		r.Kind = v.Str()
	case "detail":
		r.Summary = v.Str()
	case "path":
		r.Path = v.Str()
	case "syscall":
		r.Syscall = v.Str()
	case "reason_code":
		r.ReasonCode = v.Str()
	case "pid":
		return setUint(&r.PID, v)
	case "argv":
		return argvLine(&r.Command, v)
	case "count":
		return setUint(&r.ProcessCount, v)
	}
	return nil
}

func processExec(r *EventRow, k string, v events.JSONValue) error {
	switch k {
	case "pid":
		return setUint(&r.PID, v)
	case "ppid":
		return setUint(&r.PPID, v)
	case "argv":
		return argvLine(&r.Command, v)
	case "exe":
		r.Exe = v.Str()
	case "cwd":
		r.Cwd = v.Str()
	case "decision":
		r.Decision = v.Str()
	case "reason_code":
		r.ReasonCode = v.Str()
	case "rule_id":
		r.RuleID = v.Str()
	case "background":
		r.Background = v.Raw() == "true"
	case "root":
		r.RootProcess = v.Raw() == "true"
	}
	return nil
}

func alertRaised(r *EventRow, k string, v events.JSONValue) error {
	switch k {
	case "rule_id":
		r.RuleID = v.Str()
	case "rule_version":
		r.RuleVersion = v.Str()
	case "severity":
		r.Severity = v.Str()
	case "group_key":
		r.GroupKey = v.Str()
	case "count":
		return setUint(&r.AlertCount, v)
	case "suppressed":
		return setUint(&r.Suppressed, v)
	case "first_seen":
		return setTime(&r.FirstSeen, v)
	case "last_seen":
		return setTime(&r.LastSeen, v)
	case "message":
		r.Summary = v.Str()
	case "action":
		r.AlertAction = v.Str()
	case "matched_event_ids":
		ids, err := stringArray(v)
		for _, s := range ids {
			n, e := events.ParseID(s)
			if e != nil {
				if err == nil {
					err = fmt.Errorf("matched_event_ids: %w", e)
				}
				continue
			}
			r.MatchedEventIDs = append(r.MatchedEventIDs, uint64(n))
		}
		return err
	}
	return nil
}
