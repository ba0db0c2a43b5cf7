package store

import (
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
	"unsafe"

	"github.com/agentaudit/agentaudit/internal/events"
)

// The payload of a decoded event has passed its schema, so the flattening
// below reads it with a small scanner instead of encoding/json: that was
// most of RowFromEvent's time. Values are substrings of one copy of the
// payload; only strings with escapes are decoded into their own memory.
// flattenTyped (DecodePayload + a type switch) stays as the reference the
// tests compare this with.

var errPayload = errors.New("malformed payload")

// members calls f with each key and the raw JSON text of its value in the
// object s. s must be valid JSON (it passed the schema).
func members(s string, f func(key, val string) error) error {
	i := skipWS(s, 0)
	if i >= len(s) || s[i] != '{' {
		return errPayload
	}
	i = skipWS(s, i+1)
	if i < len(s) && s[i] == '}' {
		return nil
	}
	for i < len(s) {
		ks, ke, ok := scanString(s, i)
		if !ok {
			return errPayload
		}
		key := s[ks:ke]
		if strings.IndexByte(key, '\\') >= 0 {
			key = unquote(s[ks-1 : ke+1])
		}
		i = skipWS(s, ke+1)
		if i >= len(s) || s[i] != ':' {
			return errPayload
		}
		vs := skipWS(s, i+1)
		ve, ok := skipValue(s, vs)
		if !ok {
			return errPayload
		}
		if err := f(key, s[vs:ve]); err != nil {
			return err
		}
		i = skipWS(s, ve)
		if i < len(s) && s[i] == ',' {
			i = skipWS(s, i+1)
			continue
		}
		if i < len(s) && s[i] == '}' {
			return nil
		}
		return errPayload
	}
	return errPayload
}

func skipWS(s string, i int) int {
	for i < len(s) && (s[i] == ' ' || s[i] == '\n' || s[i] == '\t' || s[i] == '\r') {
		i++
	}
	return i
}

// scanString returns the bounds of the contents of the string starting at
// s[i] == '"'.
func scanString(s string, i int) (start, end int, ok bool) {
	if i >= len(s) || s[i] != '"' {
		return 0, 0, false
	}
	for j := i + 1; j < len(s); j++ {
		switch s[j] {
		case '\\':
			j++
		case '"':
			return i + 1, j, true
		}
	}
	return 0, 0, false
}

// skipValue returns the end of the value starting at s[i].
func skipValue(s string, i int) (int, bool) {
	if i >= len(s) {
		return 0, false
	}
	switch s[i] {
	case '"':
		_, e, ok := scanString(s, i)
		return e + 1, ok
	case '{', '[':
		depth := 0
		for j := i; j < len(s); j++ {
			switch s[j] {
			case '"':
				_, e, ok := scanString(s, j)
				if !ok {
					return 0, false
				}
				j = e
			case '{', '[':
				depth++
			case '}', ']':
				depth--
				if depth == 0 {
					return j + 1, true
				}
			}
		}
		return 0, false
	default:
		j := i
		for j < len(s) && s[j] != ',' && s[j] != '}' && s[j] != ']' && s[j] != ' ' && s[j] != '\n' && s[j] != '\t' && s[j] != '\r' {
			j++
		}
		return j, j > i
	}
}

func unquote(raw string) string {
	var s string
	if json.Unmarshal([]byte(raw), &s) != nil {
		return ""
	}
	return s
}

// str reads a JSON string value ("" for anything else, as absent fields).
func str(raw string) string {
	if len(raw) < 2 || raw[0] != '"' {
		return ""
	}
	in := raw[1 : len(raw)-1]
	if strings.IndexByte(in, '\\') >= 0 {
		return unquote(raw)
	}
	return in
}

func u64(raw string) (uint64, error) {
	if raw == "" {
		return 0, nil
	}
	return strconv.ParseUint(raw, 10, 64)
}

func ts(raw string) (time.Time, error) {
	return time.Parse(events.TimeLayout, str(raw))
}

// strArray reads an array of strings.
func strArray(raw string) ([]string, error) {
	var out []string
	i := skipWS(raw, 0)
	if i >= len(raw) || raw[i] != '[' {
		return nil, errPayload
	}
	i = skipWS(raw, i+1)
	for i < len(raw) && raw[i] != ']' {
		e, ok := skipValue(raw, i)
		if !ok {
			return nil, errPayload
		}
		out = append(out, str(raw[i:e]))
		i = skipWS(raw, e)
		if i < len(raw) && raw[i] == ',' {
			i = skipWS(raw, i+1)
		}
	}
	return out, nil
}

// field reads one nested member of an object value.
func field(obj, key string) string {
	var v string
	members(obj, func(k, val string) error {
		if k == key {
			v = val
		}
		return nil
	})
	return v
}

// flattenPayload copies the payload fields compliance filters on into r,
// reading the payload JSON directly.
func flattenPayload(r *EventRow, eventType string, payload []byte) error {
	// The row's strings point into the payload, as RowFromEvent documents:
	// a copy of every payload was a third of a kilobyte of garbage per
	// event in the ingester, which copies the row into its block at once.
	p := unsafe.String(unsafe.SliceData(payload), len(payload))
	var err error
	set := func(e error) {
		if err == nil && e != nil {
			err = e
		}
	}
	u := func(dst *uint64, raw string) { v, e := u64(raw); set(e); *dst = v }
	u32 := func(dst *uint32, raw string) { v, e := strconv.ParseUint(raw, 10, 32); set(e); *dst = uint32(v) }
	argvLine := func(raw string) string {
		a, e := strArray(raw)
		set(e)
		return bound(commandLine(a, ""), MaxCommandLen)
	}
	t := func(dst *time.Time, raw string) { v, e := ts(raw); set(e); *dst = v }
	id := func(dst *uint64, raw string) { v, e := optID(str(raw)); set(e); *dst = v }
	var each func(k, v string)
	switch eventType {
	case events.TypeSessionStarted:
		each = func(k, v string) {
			switch k {
			case "workspace":
				r.Workspace = str(v)
			case "image":
				r.Image = str(v)
			case "sandbox_profile":
				r.SandboxProfile = str(v)
			case "sandbox_profile_sha256":
				r.SandboxProfileSHA256 = str(v)
			case "operator":
				r.Operator = str(v)
			case "mode":
				r.Mode = str(v)
			case "client":
				r.ClientName = str(field(v, "name"))
			}
		}
	case events.TypeSessionEnded:
		each = func(k, v string) {
			switch k {
			case "reason":
				r.Reason = str(v)
			case "duration_ms":
				u(&r.DurationMS, v)
			case "error":
				r.Error = str(v)
			}
		}
	case events.TypeToolCallRequested:
		each = func(k, v string) {
			switch k {
			case "tool_name":
				r.ToolName = str(v)
			case "arguments_sha256":
				r.ArgumentsSHA256 = str(v)
			case "arguments":
				var argv []string
				var command string
				set(members(v, func(k, v string) error {
					switch k {
					case "cwd":
						r.Cwd = str(v)
					case "path":
						r.Path = str(v)
					case "url":
						r.URL = str(v)
					case "command":
						command = str(v)
					case "argv":
						a, e := strArray(v)
						set(e)
						argv = a
					}
					return nil
				}))
				r.Command = bound(commandLine(argv, command), MaxCommandLen)
			case "client_meta":
				clientMeta(r, v)
			}
		}
	case events.TypePolicyDecision:
		each = func(k, v string) {
			switch k {
			case "decision":
				r.Decision = str(v)
			case "reason_code":
				r.ReasonCode = str(v)
			case "rule_id":
				r.RuleID = str(v)
			case "approval_mode":
				r.ApprovalMode = str(v)
			case "risk":
				r.Risk = str(v)
			case "justification":
				r.Reason = str(v)
			}
		}
	case events.TypeApprovalRequested:
		if r.ApprovalID == "" {
			// See flattenTyped: an approval's id is its request's event id.
			r.ApprovalID = strconv.FormatUint(r.EventID, 10)
		}
		each = func(k, v string) {
			switch k {
			case "kind":
				r.Kind = str(v)
			case "summary":
				r.Summary = str(v)
			case "reason":
				r.Reason = str(v)
			case "reason_code":
				r.ReasonCode = str(v)
			case "rule_id":
				r.RuleID = str(v)
			case "risk":
				r.Risk = str(v)
			case "requester":
				r.Requester = str(field(v, "id"))
			case "expires_at":
				t(&r.ExpiresAt, v)
			case "request_event_id":
				id(&r.RefEventID, v)
			}
		}
	case events.TypeApprovalDecided:
		each = func(k, v string) {
			switch k {
			case "decision":
				r.ApprovalOutcome = str(v)
			case "reason_code":
				r.ReasonCode = str(v)
			case "scope":
				r.ApprovalScope = str(v)
			case "approver":
				r.Approver = str(field(v, "id"))
			case "comment":
				r.Reason = str(v)
			case "decided_at":
				t(&r.DecidedAt, v)
			case "key_id":
				r.KeyID = str(v)
			}
		}
	case events.TypeToolCallCompleted:
		each = func(k, v string) {
			switch k {
			case "exit_code":
				n, e := strconv.ParseInt(v, 10, 32)
				set(e)
				r.ExitCode = int32(n)
			case "duration_ms":
				u(&r.DurationMS, v)
			case "timed_out":
				r.TimedOut = v == "true"
			case "killed_reason":
				r.KilledReason = str(v)
			case "stdout", "stderr":
				length, sum := &r.StdoutLength, &r.StdoutSHA256
				if k == "stderr" {
					length, sum = &r.StderrLength, &r.StderrSHA256
				}
				set(members(v, func(k, v string) error {
					switch k {
					case "length":
						u(length, v)
					case "sha256":
						*sum = str(v)
					}
					return nil
				}))
			case "reason_code":
				r.ReasonCode = str(v)
			case "error":
				r.Error = str(v)
			case "signal":
				n, e := strconv.ParseUint(v, 10, 8)
				set(e)
				r.Signal = uint8(n)
			case "rusage":
				set(members(v, func(k, v string) error {
					switch k {
					case "user_ms":
						u(&r.UserMS, v)
					case "system_ms":
						u(&r.SystemMS, v)
					case "max_rss_kb":
						u(&r.MaxRSSKB, v)
					}
					return nil
				}))
			case "leftovers_killed":
				u(&r.ProcessCount, v)
			}
		}
	case events.TypeNetEgress:
		each = func(k, v string) {
			switch k {
			case "phase":
				r.EgressPhase = str(v)
			case "host":
				r.Host = str(v)
			case "port":
				n, e := strconv.ParseUint(v, 10, 16)
				set(e)
				r.Port = uint16(n)
			case "resolved_ip":
				r.ResolvedIP = str(v)
			case "method":
				r.Method = str(v)
			case "sni":
				r.SNI = str(v)
			case "decision":
				r.Decision = str(v)
			case "reason_code":
				r.ReasonCode = str(v)
			case "rule_id":
				r.RuleID = str(v)
			case "status_code":
				n, e := strconv.ParseUint(v, 10, 16)
				set(e)
				r.StatusCode = uint16(n)
			case "bytes_sent":
				u(&r.BytesSent, v)
			case "bytes_received":
				u(&r.BytesReceived, v)
			case "duration_ms":
				u(&r.DurationMS, v)
			}
		}
	case events.TypeSandboxViolation:
		each = func(k, v string) {
			switch k {
			case "kind":
				r.Kind = str(v)
			case "detail":
				r.Summary = str(v)
			case "path":
				r.Path = str(v)
			case "syscall":
				r.Syscall = str(v)
			case "reason_code":
				r.ReasonCode = str(v)
			case "pid":
				u32(&r.PID, v)
			case "argv":
				r.Command = argvLine(v)
			case "count":
				u(&r.ProcessCount, v)
			}
		}
	case events.TypeProcessExec:
		each = func(k, v string) {
			switch k {
			case "pid":
				u32(&r.PID, v)
			case "ppid":
				u32(&r.PPID, v)
			case "argv":
				r.Command = argvLine(v)
			case "exe":
				r.Exe = str(v)
			case "cwd":
				r.Cwd = str(v)
			case "decision":
				r.Decision = str(v)
			case "reason_code":
				r.ReasonCode = str(v)
			case "rule_id":
				r.RuleID = str(v)
			case "background":
				r.Background = v == "true"
			case "root":
				r.RootProcess = v == "true"
			}
		}
	case events.TypeAlertRaised:
		r.MatchedEventIDs = []uint64{}
		each = func(k, v string) {
			switch k {
			case "rule_id":
				r.RuleID = str(v)
			case "rule_version":
				r.RuleVersion = str(v)
			case "severity":
				r.Severity = str(v)
			case "group_key":
				r.GroupKey = str(v)
			case "count":
				u(&r.AlertCount, v)
			case "suppressed":
				u(&r.Suppressed, v)
			case "first_seen":
				t(&r.FirstSeen, v)
			case "last_seen":
				t(&r.LastSeen, v)
			case "message":
				r.Summary = str(v)
			case "action":
				r.AlertAction = str(v)
			case "matched_event_ids":
				ids, e := strArray(v)
				set(e)
				for _, s := range ids {
					n, e := events.ParseID(s)
					if e != nil {
						set(fmt.Errorf("matched_event_ids: %w", e))
						continue
					}
					r.MatchedEventIDs = append(r.MatchedEventIDs, uint64(n))
				}
			}
		}
	case events.TypeSessionHeld:
		each = func(k, v string) {
			switch k {
			case "reason":
				r.Reason = str(v)
			case "rule_id":
				r.RuleID = str(v)
			case "by":
				r.ByID = str(field(v, "id"))
			case "alert_event_id":
				id(&r.RefEventID, v)
			}
		}
	case events.TypeSessionReleased:
		each = func(k, v string) {
			switch k {
			case "reason":
				r.Reason = str(v)
			case "by":
				r.ByID = str(field(v, "id"))
			case "held_event_id":
				id(&r.RefEventID, v)
			}
		}
	case events.TypeAlertTriaged, events.TypeRuleSuppressed, events.TypeRuleUnsuppressed:
		each = func(k, v string) { flattenTriage(r, k, v, t, id) }
	case events.TypeAgentPrompt, events.TypeAgentResponse:
		each = func(k, v string) {
			switch k {
			case "model":
				r.Model = str(v)
			case "length":
				if r.TextLength == 0 {
					u(&r.TextLength, v)
				}
			case "text":
				set(agentText(r, v))
			default:
				agentCommon(r, k, v)
			}
		}
	case events.TypeAgentModelCall:
		each = func(k, v string) {
			switch k {
			case "kind":
				r.Kind = str(v)
			case "model":
				r.Model = str(v)
			case "input_tokens":
				u(&r.InputTokens, v)
			case "output_tokens":
				u(&r.OutputTokens, v)
			case "cache_read_tokens":
				u(&r.CacheReadTokens, v)
			case "cache_creation_tokens":
				u(&r.CacheCreationTokens, v)
			case "reasoning_tokens":
				u(&r.ReasoningTokens, v)
			case "tool_tokens":
				u(&r.ToolTokens, v)
			case "cost_micro_usd":
				u(&r.CostMicroUSD, v)
			case "duration_ms":
				u(&r.DurationMS, v)
			case "status":
				r.StatusCode, r.Reason = agentStatus(str(v))
			case "endpoint":
				r.URL = str(v)
			case "error":
				r.Error = str(v)
			default:
				agentCommon(r, k, v)
			}
		}
	case events.TypeAgentToolDecision, events.TypeAgentToolResult:
		each = func(k, v string) {
			switch k {
			case "tool_name":
				r.ToolName = str(v)
			case "call_id":
				r.AgentCallID = str(v)
			case "decision":
				r.AgentDecision = str(v)
			case "verdict":
				r.Kind = str(v)
			case "decision_source":
				r.DecisionSource = str(v)
			case "command":
				r.Command = bound(str(v), MaxCommandLen)
			case "path":
				r.Path = str(v)
			case "policy":
				set(members(v, func(k, v string) error {
					switch k {
					case "decision":
						r.Decision = str(v)
					case "reason_code":
						r.ReasonCode = str(v)
					case "rule_id":
						r.RuleID = str(v)
					case "policy_id":
						if r.PolicyID == "" {
							r.PolicyID = str(v)
						}
					case "policy_sha256":
						if r.PolicySHA256 == "" {
							r.PolicySHA256 = str(v)
						}
					}
					return nil
				}))
			case "success":
				r.Success = v == "true"
			case "duration_ms":
				u(&r.DurationMS, v)
			case "arguments":
				set(agentText(r, v))
			case "output":
				set(members(v, func(k, v string) error {
					switch k {
					case "length":
						u(&r.StdoutLength, v)
					case "sha256":
						r.StdoutSHA256 = str(v)
					}
					return nil
				}))
			case "error":
				r.Error = str(v)
			default:
				agentCommon(r, k, v)
			}
		}
	case events.TypeAgentSession:
		each = func(k, v string) {
			switch k {
			case "model":
				r.Model = str(v)
			case "approval_policy":
				r.ApprovalPolicy = str(v)
			case "sandbox_policy":
				r.SandboxPolicy = str(v)
			case "originator":
				r.ClientName = str(v)
			case "mcp_servers":
				a, e := strArray(v)
				set(e)
				r.Summary = bound(strings.Join(a, ","), MaxCommandLen)
			default:
				agentCommon(r, k, v)
			}
		}
	case events.TypeAgentOther:
		each = func(k, v string) {
			switch k {
			case "attributes":
				a, e := strArray(v)
				set(e)
				r.Summary = bound(strings.Join(a, " "), MaxCommandLen)
			default:
				agentCommon(r, k, v)
			}
		}
	default:
		return fmt.Errorf("%w: %q", events.ErrUnknownEventType, eventType)
	}
	if e := members(p, func(k, v string) error { each(k, v); return nil }); e != nil {
		return e
	}
	return err
}

// agentCommon flattens the fields every agent.* payload shares.
func agentCommon(r *EventRow, k, v string) {
	switch k {
	case "source":
		r.AgentSource = str(v)
	case "event_name":
		r.AgentEvent = str(v)
	case "conversation_id":
		r.ConversationID = str(v)
	case "prompt_id":
		r.PromptID = str(v)
	case "operator":
		r.Operator = str(v)
	}
}

// agentText flattens an agent text object (mode, length, sha256, text).
func agentText(r *EventRow, obj string) error {
	var err error
	e := members(obj, func(k, v string) error {
		switch k {
		case "mode":
			r.TextMode = str(v)
		case "length":
			n, e := u64(v)
			if e != nil && err == nil {
				err = e
			}
			r.TextLength = n
		case "sha256":
			r.TextSHA256 = str(v)
		case "text":
			r.Text = str(v)
		}
		return nil
	})
	if e != nil {
		return e
	}
	return err
}

// agentStatus reads an agent's call status: an HTTP status goes to
// status_code, anything else to reason.
func agentStatus(s string) (uint16, string) {
	if n, err := strconv.ParseUint(s, 10, 16); err == nil {
		return uint16(n), ""
	}
	return 0, s
}

// clientMeta flattens tool_call.requested's client_meta: the agent's call
// id (Codex callId, Claude Code tool_use_id), conversation and turn, the
// join keys to agent.* events.
func clientMeta(r *EventRow, obj string) {
	var callID, useID, sess, thread string
	members(obj, func(k, v string) error {
		switch k {
		case "call_id":
			callID = str(v)
		case "tool_use_id":
			useID = str(v)
		case "session_id":
			sess = str(v)
		case "thread_id":
			thread = str(v)
		case "turn_id":
			r.PromptID = str(v)
		}
		return nil
	})
	r.AgentCallID, r.ConversationID = callID, sess
	if r.AgentCallID == "" {
		r.AgentCallID = useID
	}
	if r.ConversationID == "" {
		r.ConversationID = thread
	}
}
