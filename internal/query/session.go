package query

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// timelineSQL reads a session's events with the columns the timeline
// describes them by. FINAL: a redelivered event shows once. It also reads
// the sessions that share an agent conversation with it: a runner's
// session whose tool calls carry the agent's conversation id
// (client_meta) and the agent's own telemetry recorded by a standalone
// OTLP receiver under that conversation id interleave in one timeline.
const timelineSQL = `SELECT
    event_time, event_time_us, seq, runner_id, event_type, event_id, tool_call_id, approval_id,
    actor_type, actor_id, agent_name, agent_version, tool_name, command, path, url,
    decision, reason_code, rule_id, approval_mode, risk, kind, reason, summary, requester,
    approval_outcome, approval_scope, approver, egress_phase, host, port, resolved_ip,
    status_code, bytes_sent, bytes_received, exit_code, duration_ms, timed_out, killed_reason,
    severity, alert_action, alert_count, syscall, by_id, workspace, image, sandbox_profile, operator, error,
    pid, ppid, exe, background, root_process, signal, process_count,
    agent_event, conversation_id, prompt_id, agent_call_id, model, input_tokens, output_tokens,
    cache_read_tokens, reasoning_tokens, cost_micro_usd, text_mode, text_length, text, agent_decision,
    decision_source, success, approval_policy, sandbox_policy, stdout_length
FROM events FINAL
WHERE session_id = @session
   OR session_id IN (
        SELECT DISTINCT session_id FROM events
        WHERE conversation_id != '' AND conversation_id IN (
            SELECT conversation_id FROM events WHERE session_id = @session AND conversation_id != ''))
ORDER BY event_time, event_time_us, runner_id, seq`

// Timeline returns a session's events in time order, one line each: when,
// which emitter and seq, the event type, the tool call, and what happened
// in words (decisions and outcomes in capitals so they stand out).
func (db *DB) Timeline(ctx context.Context, sessionID string) (*Result, error) {
	raw, err := db.query(ctx, timelineSQL, []Param{{"session", sessionID}}, 0)
	if err != nil {
		return nil, err
	}
	if len(raw.Rows) == 0 {
		return nil, fmt.Errorf("%w: session %q has no events", ErrNotFound, sessionID)
	}
	res := &Result{SQL: raw.SQL, Elapsed: raw.Elapsed, Rows: [][]any{}, Columns: []Column{
		{"time", "DateTime64(6)"}, {"emitter", "String"}, {"seq", "UInt64"}, {"event", "String"},
		{"tool_call", "String"}, {"what", "String"}, {"event_id", "UInt64"},
	}}
	for _, row := range raw.Rows {
		get := func(name string) any { return row[raw.Index(name)] }
		s := func(name string) string { return Cell(get(name)) }
		t := get("event_time").(time.Time).Add(time.Duration(get("event_time_us").(uint32)) * time.Microsecond)
		res.Rows = append(res.Rows, []any{t.UTC(), s("runner_id"), get("seq"), s("event_type"),
			s("tool_call_id"), describe(s), get("event_id")})
	}
	return res, nil
}

// describe says in words what one event records.
func describe(s func(string) string) string {
	var b strings.Builder
	add := func(format string, a ...any) { fmt.Fprintf(&b, format, a...) }
	opt := func(label, v string) {
		if v != "" && v != "0" {
			add(" %s %s", label, v)
		}
	}
	switch s("event_type") {
	case "session.started":
		// runner exec starts a session with no agent: say nothing of one.
		if agent := strings.TrimSpace(s("agent_name") + " " + s("agent_version")); agent != "" {
			add("agent %s in %s, image %s", agent, s("workspace"), s("image"))
		} else {
			add("in %s, image %s", s("workspace"), s("image"))
		}
		opt("profile", s("sandbox_profile"))
		opt("operator", s("operator"))
	case "session.ended":
		add("ENDED %s after %s", s("reason"), ms(s("duration_ms")))
		opt("error", s("error"))
	case "tool_call.requested":
		target := s("command")
		for _, k := range []string{"path", "url"} {
			if target == "" {
				target = s(k)
			}
		}
		add("%s: %s", s("tool_name"), target)
		opt("agent call", s("agent_call_id"))
	case "policy.decision":
		add("%s %s", strings.ToUpper(s("decision")), s("reason_code"))
		opt("rule", s("rule_id"))
		opt("risk", s("risk"))
		opt("approval", s("approval_id"))
	case "approval.requested":
		add("approval %s requested: %s", s("approval_id"), s("summary"))
		opt("rule", s("rule_id"))
		opt("risk", s("risk"))
		opt("by", s("requester"))
	case "approval.decided":
		add("approval %s %s", s("approval_id"), strings.ToUpper(s("approval_outcome")))
		opt("scope", s("approval_scope"))
		add(" by %s", s("approver"))
	case "tool_call.completed":
		add("exit %s in %s", s("exit_code"), ms(s("duration_ms")))
		if s("timed_out") == "1" {
			add(" TIMED OUT")
		}
		opt("killed", s("killed_reason"))
		opt("signal", s("signal"))
		opt("leftovers killed", s("process_count"))
		opt("error", s("error"))
	case "process.exec":
		add("EXEC %s %s: %s (pid %s, parent %s", strings.ToUpper(s("decision")), s("exe"), s("command"), s("pid"), s("ppid"))
		if s("root_process") == "1" {
			add(", the call's top process")
		}
		if s("background") == "1" {
			add(", in the background")
		}
		add(") %s", s("reason_code"))
		opt("rule", s("rule_id"))
		opt("approval", s("approval_id"))
	case "net.egress":
		if s("egress_phase") == "closed" {
			add("egress closed %s:%s sent %s received %s bytes", s("host"), s("port"), s("bytes_sent"), s("bytes_received"))
		} else {
			add("egress %s %s:%s %s", strings.ToUpper(s("decision")), s("host"), s("port"), s("reason_code"))
			opt("ip", s("resolved_ip"))
			opt("rule", s("rule_id"))
		}
	case "sandbox.violation":
		add("VIOLATION %s: %s", s("kind"), s("summary"))
		opt("path", s("path"))
		opt("syscall", s("syscall"))
		opt("pid", s("pid"))
		opt("command", s("command"))
		opt("count", s("process_count"))
	case "alert.raised":
		add("ALERT %s %s: %s (%s matches, action %s)", strings.ToUpper(s("severity")), s("rule_id"), s("summary"), s("alert_count"), s("alert_action"))
	case "session.held":
		add("HELD by %s: %s", s("by_id"), s("reason"))
	case "session.released":
		add("RELEASED by %s: %s", s("by_id"), s("reason"))
	case "agent.session":
		add("AGENT SESSION %s model %s, approval %s, sandbox %s", s("conversation_id"), s("model"), s("approval_policy"), s("sandbox_policy"))
		opt("mcp", s("summary"))
	case "agent.prompt":
		add("PROMPT %s", agentText(s))
		opt("prompt", s("prompt_id"))
	case "agent.model_call":
		add("MODEL %s %s", s("kind"), s("model"))
		if s("input_tokens")+s("output_tokens") != "00" {
			add(" tokens in %s out %s", s("input_tokens"), s("output_tokens"))
			opt("cached", s("cache_read_tokens"))
			opt("reasoning", s("reasoning_tokens"))
		}
		if c := s("cost_micro_usd"); c != "0" && c != "" {
			add(" cost $%s", usd(c))
		}
		if d := s("duration_ms"); d != "0" && d != "" {
			add(" in %s", ms(d))
		}
		opt("status", s("status_code"))
		opt("error", s("error"))
	case "agent.response":
		add("RESPONSE %s", agentText(s))
	case "agent.tool_decision":
		add("AGENT DECIDED %s %s (%s by %s) call %s", strings.ToUpper(s("kind")), s("tool_name"), s("agent_decision"), s("decision_source"), s("agent_call_id"))
		agentPolicy(s, add, opt)
	case "agent.tool_result":
		outcome := "FAILED"
		if s("success") == "1" {
			outcome = "OK"
		}
		add("AGENT RAN %s %s call %s in %s", s("tool_name"), outcome, s("agent_call_id"), ms(s("duration_ms")))
		agentPolicy(s, add, opt)
		opt("output bytes", s("stdout_length"))
		opt("error", s("error"))
	case "agent.other":
		add("AGENT %s %s", s("agent_event"), s("summary"))
	default:
		add("%s by %s %s", s("event_type"), s("actor_type"), s("actor_id"))
	}
	return b.String()
}

// agentText says how an agent's text was kept: the redacted text when
// stored, its length otherwise.
func agentText(s func(string) string) string {
	switch s("text_mode") {
	case "store":
		return strconv.Quote(s("text"))
	case "hash", "drop":
		return "(" + s("text_length") + " bytes, " + s("text_mode") + ")"
	}
	return "(" + s("text_length") + " bytes, not logged)"
}

// agentPolicy adds the command an agent ran and what our policy says of it.
func agentPolicy(s func(string) string, add func(string, ...any), opt func(string, string)) {
	opt("command", s("command"))
	if d := s("decision"); d != "" {
		add(" policy would %s %s", strings.ToUpper(d), s("reason_code"))
		opt("rule", s("rule_id"))
	}
}

// usd renders micro-dollars as dollars.
func usd(micro string) string {
	n, err := strconv.ParseUint(micro, 10, 64)
	if err != nil {
		return micro
	}
	return strconv.FormatFloat(float64(n)/1e6, 'f', -1, 64)
}

func ms(v string) string {
	n, err := strconv.ParseUint(v, 10, 64)
	if err != nil {
		return v
	}
	return (time.Duration(n) * time.Millisecond).String()
}
