package query

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// timelineSQL reads a session's events with the columns the timeline
// describes them by. FINAL: a redelivered event shows once.
const timelineSQL = `SELECT
    event_time, event_time_us, seq, runner_id, event_type, event_id, tool_call_id, approval_id,
    actor_type, actor_id, agent_name, agent_version, tool_name, command, path, url,
    decision, reason_code, rule_id, approval_mode, risk, kind, reason, summary, requester,
    approval_outcome, approval_scope, approver, egress_phase, host, port, resolved_ip,
    status_code, bytes_sent, bytes_received, exit_code, duration_ms, timed_out, killed_reason,
    severity, alert_action, alert_count, syscall, by_id, workspace, image, sandbox_profile, operator, error,
    pid, ppid, exe, background, root_process, signal, process_count
FROM events FINAL
WHERE session_id = @session
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
		add("agent %s %s in %s, image %s", s("agent_name"), s("agent_version"), s("workspace"), s("image"))
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
	default:
		add("%s by %s %s", s("event_type"), s("actor_type"), s("actor_id"))
	}
	return b.String()
}

func ms(v string) string {
	n, err := strconv.ParseUint(v, 10, 64)
	if err != nil {
		return v
	}
	return (time.Duration(n) * time.Millisecond).String()
}
