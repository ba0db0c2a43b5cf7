package otlp

import (
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/agentaudit/agentaudit/internal/events"
)

// TestRealRecordings maps what the real CLIs sent (testdata/real, written
// by TestRecordRealAgents under the realagents tag: Codex 0.169.1 and
// Claude Code 2.1.197 each running `echo hello` for a scripted model, in
// both encodings): nothing is rejected, and the session's prompt, model
// calls with tokens, the agent's decision and the tool's result are there,
// linked by the agent's call id.
func TestRealRecordings(t *testing.T) {
	for _, agent := range []string{"codex", "claude"} {
		for _, ext := range []string{"json", "pb"} {
			t.Run(agent+"."+ext, func(t *testing.T) {
				files, _ := filepath.Glob(filepath.Join("testdata", "real", agent+"-*."+ext))
				if len(files) == 0 {
					t.Fatalf("no recordings of %s in testdata/real", agent)
				}
				m := testMapper(t)
				types := map[string]int{}
				var tokens uint64
				var decided, ran string
				var cmds []string
				for _, f := range files {
					enc := EncodingProtobuf
					if ext == "json" {
						enc = EncodingJSON
					}
					ld, err := DecodeLogs(fixture(t, strings.TrimPrefix(f, "testdata/")), enc)
					if err != nil {
						t.Fatalf("%s: %v", f, err)
					}
					envs, res := m.Map(ld, Tenant{Name: "acme"})
					if res.Rejected != 0 {
						t.Errorf("%s: %+v", f, res)
					}
					stampAll(t, envs)
					for _, e := range envs {
						types[e.EventType]++
						p, _ := e.DecodePayload()
						switch x := p.(type) {
						case *events.AgentModelCall:
							tokens += x.InputTokens + x.OutputTokens
						case *events.AgentToolDecision:
							decided = x.CallID
						case *events.AgentToolResult:
							ran = x.CallID
							cmds = append(cmds, x.Command)
							if x.Policy == nil || x.Policy.Decision != events.DecisionAllow {
								t.Errorf("echo hello judged %+v", x.Policy)
							}
						}
					}
				}
				for _, typ := range []string{events.TypeAgentPrompt, events.TypeAgentModelCall, events.TypeAgentToolDecision, events.TypeAgentToolResult} {
					if types[typ] == 0 {
						t.Errorf("no %s in %v", typ, types)
					}
				}
				if tokens == 0 || decided == "" || decided != ran || !slices.Equal(cmds, []string{"echo hello"}) {
					t.Errorf("tokens %d, decided %q, ran %q, commands %q", tokens, decided, ran, cmds)
				}
			})
		}
	}
}
