package detect

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io/fs"
	"maps"
	"path"
	"strconv"
	"strings"
	"time"

	"github.com/agentaudit/agentaudit/internal/events"
)

// Rule tests write only what matters: an event is its type, a time offset
// and the fields the rule looks at. Everything else is filled from
// defaults below, the chain (seq, prev_hash, hash) is computed per session,
// and the result must still pass events.Decode, so a test event that the
// schemas reject is a load error.

// DefaultTestStart is when a test's first event happens unless the test
// sets start: a Monday, 10:00 UTC, inside any plausible working hours.
var DefaultTestStart = time.Date(2026, 3, 2, 10, 0, 0, 0, time.UTC)

// testSignature has the shape of an Ed25519 signature; rule tests do not
// verify signatures (internal/approvals does).
const testSignature = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8gISIjJCUmJygpKissLS4vMDEyMzQ1Njc4OTo7PD0+Pw=="

const (
	testTenant  = "acme"
	testSession = "sess-1"
	testRunner  = "runner-1"
	testAgent   = "claude-code"
	firstTestID = 7_000_000_000_000_000_001
)

func sha256Hex(s string) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:])
}

// payloadDefaults returns the default payload of an event type as JSON
// values; at is the event's time.
func payloadDefaults(typ string, at time.Time) map[string]any {
	ts := at.UTC().Format(events.TimeLayout)
	out := func() map[string]any {
		return map[string]any{"length": 0, "sha256": sha256Hex(""), "text": "", "truncated": false}
	}
	switch typ {
	case events.TypeSessionStarted:
		return map[string]any{"workspace": "/home/dev/project", "sandbox_profile": "default", "sandbox_profile_sha256": sha256Hex("default"),
			"image": "localhost/agentaudit-sandbox:latest", "mode": "mcp"}
	case events.TypeSessionEnded:
		return map[string]any{"reason": "completed", "duration_ms": 60000, "counts": map[string]any{
			"tool_calls": 0, "allowed": 0, "asked": 0, "denied": 0, "approvals_granted": 0,
			"egress_allowed": 0, "egress_denied": 0, "violations": 0}}
	case events.TypeToolCallRequested:
		return map[string]any{"tool_name": "bash", "arguments": map[string]any{}, "arguments_truncated": false}
	case events.TypePolicyDecision:
		return map[string]any{"decision": "allow", "reason_code": "allowlisted", "approval_mode": "none"}
	case events.TypeApprovalRequested:
		return map[string]any{"kind": "tool_call", "summary": "run a command", "reason": "policy asks for approval",
			"reason_code": "needs_approval", "risk": "medium", "requester": map[string]any{"type": "agent", "id": testAgent},
			"scopes": []any{"once", "session"}, "expires_at": at.Add(15 * time.Minute).UTC().Format(events.TimeLayout)}
	case events.TypeApprovalDecided:
		return map[string]any{"decision": "approved", "reason_code": "approved", "scope": "once",
			"approver": map[string]any{"type": "human", "id": "alice"}, "decided_at": ts,
			"key_id": "approvals-1", "signature": testSignature}
	case events.TypeToolCallCompleted:
		return map[string]any{"exit_code": 0, "duration_ms": 120, "timed_out": false, "stdout": out(), "stderr": out()}
	case events.TypeNetEgress:
		return map[string]any{"phase": "decision", "host": "example.com", "port": 443, "decision": "allow",
			"reason_code": "allowlisted", "bytes_sent": 0, "bytes_received": 0, "duration_ms": 0}
	case events.TypeSandboxViolation:
		return map[string]any{"kind": "seccomp", "detail": "blocked syscall"}
	case events.TypeAlertRaised:
		return map[string]any{"rule_id": "test.rule", "rule_version": "1", "severity": "low", "group_key": testSession,
			"count": 1, "suppressed": 0, "first_seen": ts, "last_seen": ts, "matched_event_ids": []any{"1"},
			"message": "test alert", "action": "notify"}
	case events.TypeSessionHeld:
		return map[string]any{"reason": "held by a rule", "by": map[string]any{"type": "rule", "id": "test.rule"}}
	case events.TypeSessionReleased:
		return map[string]any{"reason": "released", "by": map[string]any{"type": "human", "id": "alice"}}
	case events.TypeAgentPrompt:
		return agentDefaults("claude_code.user_prompt", map[string]any{"length": 0})
	case events.TypeAgentModelCall:
		return agentDefaults("claude_code.api_request", map[string]any{"kind": "call", "model": "claude-sonnet-4-5"})
	case events.TypeAgentResponse:
		return agentDefaults("claude_code.assistant_response", map[string]any{"length": 0})
	case events.TypeAgentToolDecision:
		return agentDefaults("claude_code.tool_decision", map[string]any{"tool_name": "Bash", "call_id": "toolu_test",
			"decision": "accept", "verdict": "allow", "decision_source": "config"})
	case events.TypeAgentToolResult:
		return agentDefaults("claude_code.tool_result", map[string]any{"tool_name": "Bash", "call_id": "toolu_test", "success": true})
	case events.TypeAgentSession:
		return agentDefaults("codex.conversation_starts", map[string]any{})
	case events.TypeAgentOther:
		return agentDefaults("claude_code.mcp_server_connection", map[string]any{"attributes": []any{}})
	}
	return map[string]any{}
}

// agentDefaults is an agent.* payload of the agent session testSession,
// from Claude Code unless a test says otherwise.
func agentDefaults(name string, p map[string]any) map[string]any {
	source, _, _ := strings.Cut(name, ".")
	p["source"], p["event_name"], p["conversation_id"] = source, name, testSession
	return p
}

func actorDefault(typ string) map[string]any {
	switch typ {
	case events.TypeApprovalDecided, events.TypeSessionReleased:
		return map[string]any{"type": "human", "id": "alice"}
	case events.TypeAlertRaised, events.TypeSessionHeld:
		return map[string]any{"type": "rule", "id": "test.rule"}
	}
	return map[string]any{"type": "agent", "id": testAgent}
}

// merge overlays src on dst: maps merge recursively, anything else
// replaces.
func merge(dst, src map[string]any) map[string]any {
	out := maps.Clone(dst)
	for k, v := range src {
		if sm, ok := v.(map[string]any); ok {
			if dm, ok := out[k].(map[string]any); ok {
				out[k] = merge(dm, sm)
				continue
			}
		}
		out[k] = v
	}
	return out
}

type chainHead struct {
	seq  uint64
	hash string
}

// testEventBuilder builds one test's events.
type testEventBuilder struct {
	fsys   fs.FS
	dir    string
	start  time.Time
	last   time.Time
	nextID uint64
	chains map[events.ChainKey]*chainHead
	out    []*events.Envelope
}

func (b *testEventBuilder) add(d *eventDoc) error {
	if d.File != "" {
		if d.Type != "" || d.Payload != nil || d.Envelope != nil || d.Repeat != 0 {
			return fmt.Errorf("an event with file takes no other keys but at")
		}
		return b.addFile(d)
	}
	if !validEventType(d.Type) {
		return fmt.Errorf("unknown event type %q", d.Type)
	}
	n := max(d.Repeat, 1)
	if n+len(b.out) > maxTestEvents {
		return fmt.Errorf("repeat %d is over %d", n, maxTestEvents)
	}
	every := time.Duration(d.Every)
	if every == 0 {
		every = time.Second
	}
	at, err := b.time(d.At)
	if err != nil {
		return err
	}
	for i := range n {
		if err := b.one(d, at.Add(time.Duration(i)*every)); err != nil {
			return err
		}
	}
	return nil
}

// time resolves `at`: "+5s"/"5s" after the test start, "-1m" before it,
// an RFC 3339 time, or empty for one second after the previous event.
func (b *testEventBuilder) time(at string) (time.Time, error) {
	if at == "" {
		if b.last.IsZero() {
			return b.start, nil
		}
		return b.last.Add(time.Second), nil
	}
	if t, err := time.Parse(time.RFC3339Nano, at); err == nil {
		return t.UTC(), nil
	}
	neg := strings.HasPrefix(at, "-")
	d, err := parseDuration(strings.TrimLeft(at, "+-"))
	if err != nil {
		return time.Time{}, fmt.Errorf("at %q is neither an offset like +5s nor an RFC 3339 time", at)
	}
	if neg {
		d = -d
	}
	return b.start.Add(d), nil
}

func (b *testEventBuilder) one(d *eventDoc, at time.Time) error {
	id := strconv.FormatUint(b.nextID, 10)
	b.nextID++
	env := map[string]any{
		"event_id": id, "event_type": d.Type, "schema_version": events.SchemaVersion,
		"event_time": at.UTC().Format(events.TimeLayout), "tenant": testTenant,
		"session_id": testSession, "runner_id": testRunner, "actor": actorDefault(d.Type),
	}
	if d.Type != events.TypeApprovalDecided && d.Type != events.TypeSessionReleased {
		env["agent"] = map[string]any{"name": testAgent, "version": "1.0.0"}
	}
	over, err := yamlToJSONValue(d.Envelope)
	if err != nil {
		return fmt.Errorf("envelope: %v", err)
	}
	if om, ok := over.(map[string]any); ok {
		for _, k := range []string{"payload", "event_type", "hash"} {
			if _, bad := om[k]; bad {
				return fmt.Errorf("envelope: set %s with the event's type/payload keys, not envelope", k)
			}
		}
		env = merge(env, om)
	}
	p, err := yamlToJSONValue(d.Payload)
	if err != nil {
		return fmt.Errorf("payload: %v", err)
	}
	payload := payloadDefaults(d.Type, at)
	if pm, ok := p.(map[string]any); ok {
		payload = merge(payload, pm)
	}
	if d.Type == events.TypeToolCallRequested {
		if _, set := payload["arguments_sha256"]; !set {
			raw, _ := json.Marshal(payload["arguments"])
			payload["arguments_sha256"] = sha256Hex(string(raw))
		}
	}
	env["payload"] = payload
	seq, hasSeq := env["seq"]
	delete(env, "seq")
	prev, hasPrev := env["prev_hash"]
	delete(env, "prev_hash")
	// Placeholder chain fields so the first decode validates everything
	// else; the real ones are computed next.
	env["seq"], env["prev_hash"], env["hash"] = 1, events.GenesisHash, events.GenesisHash
	raw, err := json.Marshal(env)
	if err != nil {
		return err
	}
	e, err := events.Decode(raw)
	if err != nil {
		return fmt.Errorf("event %d (%s) is not valid: %v", len(b.out)+1, d.Type, err)
	}
	head := b.chains[e.Key()]
	if head == nil {
		head = &chainHead{hash: events.GenesisHash}
		b.chains[e.Key()] = head
	}
	e.Seq, e.PrevHash = head.seq+1, head.hash
	if hasSeq {
		n, ok := asUint(seq)
		if !ok || n == 0 {
			return fmt.Errorf("envelope.seq must be a positive integer")
		}
		e.Seq = n
	}
	if hasPrev {
		s, ok := prev.(string)
		if !ok {
			return fmt.Errorf("envelope.prev_hash must be a string")
		}
		e.PrevHash = s
	}
	if e.Hash, err = events.ComputeHash(e); err != nil {
		return err
	}
	if err := events.Validate(e); err != nil {
		return fmt.Errorf("event %d (%s) is not valid: %v", len(b.out)+1, d.Type, err)
	}
	if e.Seq > head.seq {
		head.seq, head.hash = e.Seq, e.Hash
	}
	b.last = at
	b.out = append(b.out, e)
	return nil
}

func (b *testEventBuilder) addFile(d *eventDoc) error {
	p := path.Join(b.dir, d.File)
	data, err := fs.ReadFile(b.fsys, p)
	if err != nil {
		return fmt.Errorf("event file: %v", err)
	}
	e, err := events.Decode(data)
	if err != nil {
		return fmt.Errorf("event file %s: %v", d.File, err)
	}
	if d.At != "" {
		at, err := b.time(d.At)
		if err != nil {
			return err
		}
		// A new time changes the hash: re-stamp so the event stays
		// consistent with its chain.
		e.EventTime = at
		if e.Hash, err = events.ComputeHash(e); err != nil {
			return err
		}
	}
	b.last = e.EventTime
	b.out = append(b.out, e)
	return nil
}

// buildTests turns test documents into Tests with validated events.
func (l *loader) buildTests(file, ruleID string, docs []testDoc, sql bool) ([]Test, []*LoadError) {
	var tests []Test
	var errs []*LoadError
	fail := func(line int, format string, args ...any) {
		errs = append(errs, &LoadError{File: file, Line: line, Reason: fmt.Sprintf("rule %s: ", ruleID) + fmt.Sprintf(format, args...)})
	}
	names := map[string]bool{}
	for i, d := range docs {
		if d.Name == "" {
			d.Name = fmt.Sprintf("test %d", i+1)
		}
		if names[d.Name] {
			fail(d.line, "test name %q is used twice", d.Name)
			continue
		}
		names[d.Name] = true
		t := Test{Name: d.Name, Expect: Expect(d.Expect), Count: d.Count, Line: d.line, File: file}
		if t.Expect == "" && t.Count != nil {
			t.Expect = ExpectFire
			if *t.Count == 0 {
				t.Expect = ExpectNoFire
			}
		}
		if t.Expect != ExpectFire && t.Expect != ExpectNoFire {
			fail(d.line, "test %q: expect must be fire or no_fire, not %q", d.Name, d.Expect)
			continue
		}
		if t.Count != nil && (*t.Count < 0 || (*t.Count == 0) != (t.Expect == ExpectNoFire)) {
			fail(d.line, "test %q: count %d contradicts expect %s", d.Name, *t.Count, t.Expect)
			continue
		}
		if sql {
			if len(d.Events) > 0 {
				fail(d.line, "test %q: a SQL rule's test gives rows, not events", d.Name)
				continue
			}
			for _, row := range d.Rows {
				v, err := yamlToJSONValue(row)
				if err != nil {
					fail(d.line, "test %q: %v", d.Name, err)
					continue
				}
				t.Rows = append(t.Rows, v.(map[string]any))
			}
			tests = append(tests, t)
			continue
		}
		if len(d.Rows) > 0 {
			fail(d.line, "test %q: a stream rule's test gives events, not rows", d.Name)
			continue
		}
		if len(d.Events) == 0 {
			fail(d.line, "test %q has no events", d.Name)
			continue
		}
		start := DefaultTestStart
		if d.Start != "" {
			s, err := time.Parse(time.RFC3339Nano, d.Start)
			if err != nil {
				fail(d.line, "test %q: start %q is not an RFC 3339 time", d.Name, d.Start)
				continue
			}
			start = s.UTC()
		}
		b := &testEventBuilder{fsys: l.fsys, dir: dirOf(file), start: start, nextID: firstTestID, chains: map[events.ChainKey]*chainHead{}}
		ok := true
		for j := range d.Events {
			if err := b.add(&d.Events[j]); err != nil {
				fail(d.Events[j].line, "test %q: %v", d.Name, err)
				ok = false
				break
			}
			if len(b.out) > maxTestEvents {
				fail(d.line, "test %q has more than %d events", d.Name, maxTestEvents)
				ok = false
				break
			}
		}
		if ok {
			t.Events = b.out
			tests = append(tests, t)
		}
	}
	return tests, errs
}
