package runner

import (
	"context"
	"encoding/json"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/agentaudit/agentaudit/internal/events"
	"github.com/agentaudit/agentaudit/internal/hook"
)

// TestHookAnswers: what the runner answers each agent's PreToolUse and
// what it has recorded by then. tool_call.requested and policy.decision,
// under the agent's own call id and with it in client_meta, are
// acknowledged before the answer (audit before act); with Kafka gone the
// hook refuses audit_unavailable; a PostToolUse becomes
// tool_call.completed under the decision, and one nobody allowed
// completes nothing.
func TestHookAnswers(t *testing.T) {
	type want struct {
		Code     int
		Stdout   string
		Stderr   string   // a substring
		Recorded []string // event type and decision, as acknowledged when the hook answered
		Meta     *events.ClientMeta
	}
	allowClaude := `{"hookSpecificOutput":{"hookEventName":"PreToolUse","permissionDecision":"allow","permissionDecisionReason":"agentaudit: allowlisted"}}` + "\n"
	cases := []struct {
		name, agent, tool, input string
		down                     bool
		want                     want
	}{
		{name: "claude allowed", agent: AgentClaude, tool: "Bash", input: `{"command":"ls -la"}`,
			want: want{Stdout: allowClaude, Recorded: []string{"tool_call.requested", "policy.decision allow"},
				Meta: &events.ClientMeta{ToolUseID: "toolu_1", SessionID: "s-1"}}},
		{name: "codex allowed: exit 0, nothing printed", agent: AgentCodex, tool: "Bash", input: `{"command":"ls -la"}`,
			want: want{Recorded: []string{"tool_call.requested", "policy.decision allow"},
				Meta: &events.ClientMeta{CallID: "toolu_1", SessionID: "s-1"}}},
		{name: "denied by rule", agent: AgentCodex, tool: "exec_command", input: `{"cmd":"rm -rf /"}`,
			want: want{Code: 2, Stderr: "agentaudit denied this tool call (denied_by_rule) by rule destroy-root",
				Recorded: []string{"tool_call.requested", "policy.decision deny"}, Meta: &events.ClientMeta{CallID: "toolu_1", SessionID: "s-1"}}},
		{name: "write outside the workspace", agent: AgentClaude, tool: "Write", input: `{"file_path":"/etc/passwd","content":"x"}`,
			want: want{Code: 2, Stderr: "(path_outside_workspace)",
				Recorded: []string{"tool_call.requested", "policy.decision deny"}, Meta: &events.ClientMeta{ToolUseID: "toolu_1", SessionID: "s-1"}}},
		{name: "web fetch without an egress policy", agent: AgentClaude, tool: "WebFetch", input: `{"url":"https://example.org/","prompt":"p"}`,
			want: want{Code: 2, Stderr: "(default_deny)",
				Recorded: []string{"tool_call.requested", "policy.decision deny"}, Meta: &events.ClientMeta{ToolUseID: "toolu_1", SessionID: "s-1"}}},
		{name: "kafka gone", agent: AgentClaude, tool: "Bash", input: `{"command":"ls -la"}`, down: true,
			want: want{Code: 2, Stderr: "(audit_unavailable)"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			g := newRig(t)
			s, err := g.r.OpenSession(context.Background(), SessionOptions{Workspace: g.ws, Mode: "agent", Agent: tc.agent,
				Client: &events.ClientInfo{Name: agentClientName(tc.agent), Version: agentVersion(tc.agent)}})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { s.Close(context.Background(), events.EndCompleted) })
			g.em.down.Store(tc.down)
			in := func(event, extra string) []byte {
				return []byte(`{"session_id":"s-1","hook_event_name":"` + event + `","cwd":"/workspace","tool_name":"` + tc.tool +
					`","tool_input":` + tc.input + `,"tool_use_id":"toolu_1"` + extra + `}`)
			}
			resp := s.Hook(context.Background(), &hook.Request{Kind: hook.KindHook, Agent: tc.agent, Event: "PreToolUse", Input: in("PreToolUse", "")})
			got := want{Code: resp.ExitCode, Stdout: resp.Stdout}
			if tc.want.Stderr != "" && strings.Contains(resp.Stderr, tc.want.Stderr) {
				got.Stderr = tc.want.Stderr
			} else {
				got.Stderr = resp.Stderr
			}
			// What was acknowledged when the answer came back (with Kafka
			// gone: nothing; the request is only spooled).
			g.em.mu.Lock()
			acked := append([]*events.Envelope(nil), g.em.acked...)
			g.em.mu.Unlock()
			for _, e := range acked {
				if e.ToolCallID == "" {
					continue
				}
				p, err := e.DecodePayload()
				if err != nil {
					t.Fatal(err)
				}
				if e.ToolCallID != "toolu_1" {
					t.Errorf("%s under tool_call_id %q, want the agent's toolu_1", e.EventType, e.ToolCallID)
				}
				switch pl := p.(type) {
				case *events.ToolCallRequested:
					got.Recorded = append(got.Recorded, e.EventType)
					got.Meta = pl.ClientMeta
				case *events.PolicyDecision:
					got.Recorded = append(got.Recorded, e.EventType+" "+string(pl.Decision))
				default:
					got.Recorded = append(got.Recorded, e.EventType)
				}
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Fatalf("(-want +got):\n%s", diff)
			}

			// The PostToolUse: tool_call.completed for a call that was
			// allowed, under its decision; nothing for any other.
			before := len(g.em.all())
			post := s.Hook(context.Background(), &hook.Request{Kind: hook.KindHook, Agent: tc.agent, Event: "PostToolUse",
				Input: in("PostToolUse", `,"tool_response":{"stdout":"ok\n","stderr":"","interrupted":false}`)})
			if post.ExitCode != 0 || post.Stdout != "" {
				t.Errorf("PostToolUse answered %+v, want nothing", post)
			}
			s.completions.wait()
			var completed []*events.Envelope
			for _, e := range g.em.all()[before:] {
				if e.EventType == events.TypeToolCallCompleted {
					completed = append(completed, e)
				}
			}
			allowed := tc.want.Code == 0
			if allowed != (len(completed) == 1) || len(completed) > 1 {
				t.Fatalf("%d tool_call.completed after the PostToolUse of a call allowed=%v", len(completed), allowed)
			}
			if allowed {
				var dec string
				for _, e := range g.em.all() {
					if e.EventType == events.TypePolicyDecision && e.ToolCallID == "toolu_1" {
						dec = e.EventID
					}
				}
				if completed[0].ParentEventID != dec || completed[0].ToolCallID != "toolu_1" {
					t.Errorf("tool_call.completed %s parent %s, want the decision %s", completed[0].ToolCallID, completed[0].ParentEventID, dec)
				}
				p, _ := completed[0].DecodePayload()
				if out, _ := json.Marshal(p.(*events.ToolCallCompleted).Stdout); !strings.Contains(string(out), "ok") {
					t.Errorf("tool_call.completed stdout %s, want the tool's output", out)
				}
			}
		})
	}
}
