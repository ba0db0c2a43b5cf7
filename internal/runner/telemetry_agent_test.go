package runner

import (
	"testing"

	"github.com/agentaudit/agentaudit/internal/agenttest"
	"github.com/agentaudit/agentaudit/internal/events"
)

// Each agent's own telemetry reaches the session's receiver from inside
// the sandbox (no network: the supervisor relays its OTLP port) and lands
// on the session's chain: the prompt, the model calls with their tokens,
// and the agent's record of the tool call the hooks decided, linked to
// that call's tool_call_id.
func TestAgentTelemetry(t *testing.T) {
	for _, agent := range []string{AgentCodex, AgentClaude} {
		t.Run(agent, func(t *testing.T) { testAgentTelemetry(t, agent) })
	}
}

func testAgentTelemetry(t *testing.T, agent string) {
	g := startAgent(t, agent, []agenttest.Step{shellStep(agent, "echo telemetry > tel.txt")}, agentArgs(agent)...)
	if code := g.wait(t); code != 0 {
		t.Fatalf("agent exit code %d\nstderr:\n%s", code, g.stderr())
	}
	evs := g.events(t)
	if err := events.VerifyChain(evs); err != nil {
		t.Errorf("chain: %v", err)
	}
	hookCalls := map[string]bool{}
	for _, ev := range evs {
		if ev.EventType == events.TypeToolCallRequested {
			hookCalls[ev.ToolCallID] = true
		}
	}
	var prompts, modelCalls, tokens, linked int
	seen := map[string]int{}
	for _, ev := range evs {
		seen[ev.EventType]++
		if ev.SessionID != g.s.ID() {
			t.Errorf("%s in session %s, want %s", ev.EventType, ev.SessionID, g.s.ID())
		}
		p, err := ev.DecodePayload()
		if err != nil {
			t.Errorf("%s: %v", ev.EventType, err)
			continue
		}
		switch pl := p.(type) {
		case *events.AgentPrompt:
			prompts++
		case *events.AgentModelCall:
			modelCalls++
			if pl.InputTokens > 0 {
				tokens++
			}
		case *events.AgentToolResult, *events.AgentToolDecision:
			if ev.ToolCallID != "" && hookCalls[ev.ToolCallID] {
				linked++
			}
		}
	}
	t.Logf("%s: %d prompts, %d model calls (%d with tokens), %d tool events linked; by type %v", agent, prompts, modelCalls, tokens, linked, seen)
	if prompts == 0 || modelCalls == 0 || tokens == 0 || linked == 0 {
		t.Errorf("agent telemetry: %d prompts, %d model calls (%d with tokens), %d tool events linked to a hook call; events by type %v",
			prompts, modelCalls, tokens, linked, seen)
	}
}
