// Package eventgen generates realistic audit events in volume, for the
// whole-system benchmarks (internal/bench/...) and for the tests that
// need many events of every type.
package eventgen

import (
	"fmt"
	"io/fs"
	"math/rand/v2"
	"sort"
	"strconv"
	"time"

	"github.com/agentaudit/agentaudit/internal/events"
	"github.com/agentaudit/agentaudit/internal/store"
	"github.com/agentaudit/agentaudit/schemas"
)

// ExampleSession copies examples (from Examples) into a new session:
// fresh event ids (approval and parent references follow), times from
// base on. The events are not stamped; every emitter's events form one
// chain.
func ExampleSession(ids *events.IDGen, tmpl []*events.Envelope, session string, base time.Time) []*events.Envelope {
	newIDs := map[string]string{}
	out := make([]*events.Envelope, len(tmpl))
	for i, t := range tmpl {
		env := *t
		env.EventID = ids.Next().String()
		newIDs[t.EventID] = env.EventID
		env.SessionID = session
		env.EventTime = base.Add(time.Duration(i) * 37 * time.Microsecond).Truncate(time.Microsecond)
		env.Seq, env.PrevHash, env.Hash = 0, "", ""
		if env.ApprovalID != "" {
			env.ApprovalID = newIDs[env.ApprovalID]
		}
		if env.ParentEventID != "" {
			env.ParentEventID = newIDs[env.ParentEventID]
		}
		out[i] = &env
	}
	return out
}

// Examples returns the schemas' valid examples (every event type) in time
// order.
func Examples() ([]*events.Envelope, error) {
	paths, err := fs.Glob(schemas.FS, "examples/valid/*.json")
	if err != nil {
		return nil, err
	}
	var out []*events.Envelope
	for _, p := range paths {
		b, err := fs.ReadFile(schemas.FS, p)
		if err != nil {
			return nil, err
		}
		env, err := events.Decode(b)
		if err != nil {
			return nil, fmt.Errorf("eventgen: %s: %w", p, err)
		}
		out = append(out, env)
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].EventTime.Before(out[j].EventTime) })
	return out, nil
}

// PeriodEnd is the (exclusive) end of PeriodSession's period: fixed, so
// that a bench database generated once is reused by later runs.
var PeriodEnd = time.Date(2026, 2, 1, 0, 0, 0, 0, time.UTC)

var commands = []string{
	"ls -la", "git status", "go test ./...", "go build ./...", "make", "npm test", "cat README.md",
	"grep -rn TODO .", "git diff", "python3 -m pytest", "git push origin main", "rm -rf build",
	"curl https://proxy.golang.org", "make deploy", "docker ps", "kubectl get pods", "pip install -r requirements.txt",
	"cargo build", "sed -i s/a/b/ main.go", "find . -name '*.go'",
}

var hosts = []string{"proxy.golang.org", "registry.npmjs.org", "pypi.org", "github.com", "169.254.169.254", "evil.example.com", "10.0.0.5"}

// PeriodSession builds session s of n sessions spread over the days
// before PeriodEnd, as stored rows: a runner chain with tool calls and
// their decisions, approvals on the approvals service's chain, egress, and
// now and then an alert.
func PeriodSession(s, n, days int, ids *events.IDGen) ([]store.EventRow, error) {
	rng := rand.New(rand.NewPCG(uint64(s), 42))
	span := time.Duration(days) * 24 * time.Hour
	t := PeriodEnd.Add(-span).Add(time.Duration(float64(span) * (float64(s) + rng.Float64()) / float64(n)))
	sid := fmt.Sprintf("bench-%08d", s)
	runner := fmt.Sprintf("runner-%d", s%8)
	agent := []string{"claude-code", "codex", "aider", "goose"}[s%4]
	policySHA := fmt.Sprintf("%064x", 1+s*4/n) // a new policy version each quarter of the period
	chains := map[string]*events.Chain{}
	var rows []store.EventRow
	emit := func(chainRunner string, pl events.Payload, opts ...events.Option) (*events.Envelope, error) {
		t = t.Add(time.Duration(50+rng.IntN(2000)) * time.Millisecond)
		c := chains[chainRunner]
		if c == nil {
			c = events.NewChain(events.ChainKey{SessionID: sid, RunnerID: chainRunner})
			chains[chainRunner] = c
		}
		env, err := events.New(pl, append([]events.Option{events.WithIDs(ids), events.WithTime(t), events.WithTenant("bench"),
			events.WithSession(sid, chainRunner), events.WithAgent(agent, "1.0"), events.WithActor(events.ActorSystem, chainRunner)}, opts...)...)
		if err != nil {
			return nil, err
		}
		raw, err := c.StampAppend(nil, env)
		if err != nil {
			return nil, err
		}
		row, err := store.RowFromEvent(env, raw, store.Source{Topic: "bench"})
		if err != nil {
			return nil, err
		}
		rows = append(rows, row)
		return env, nil
	}
	sum := fmt.Sprintf("%064x", s)
	if _, err := emit(runner, events.SessionStarted{Workspace: "/srv/ws/" + sid, SandboxProfileSHA256: sum, SandboxProfile: "default",
		Image: "localhost/agentaudit-sandbox:bench", Operator: "ops@bench", Mode: "mcp"}); err != nil {
		return nil, err
	}
	policy := events.WithPolicy("default", policySHA)
	for c := 0; c < 8; c++ {
		tc := fmt.Sprintf("tc-%d-%d", s, c)
		cmd := commands[rng.IntN(len(commands))]
		if _, err := emit(runner, events.ToolCallRequested{ToolName: "shell", Arguments: events.ToolArguments{Command: cmd, Cwd: "/workspace"},
			ArgumentsSHA256: sum}, events.WithToolCall(tc)); err != nil {
			return nil, err
		}
		roll := rng.IntN(10)
		run := true
		switch {
		case roll < 8:
			_, err := emit(runner, events.PolicyDecision{Decision: events.DecisionAllow, ReasonCode: events.ReasonAllowlisted, RuleID: "fs/list",
				ApprovalMode: events.ApprovalModeNone, Risk: events.RiskLow}, events.WithToolCall(tc), policy)
			if err != nil {
				return nil, err
			}
		case roll == 8:
			if _, err := emit(runner, events.PolicyDecision{Decision: events.DecisionAsk, ReasonCode: events.ReasonNeedsApproval, RuleID: "deploy/any",
				ApprovalMode: events.ApprovalModeRequired, Risk: events.RiskHigh}, events.WithToolCall(tc), policy); err != nil {
				return nil, err
			}
			req, err := emit(runner, events.ApprovalRequested{Kind: events.ApprovalKindToolCall, Summary: cmd, Reason: "deploy", ReasonCode: events.ReasonNeedsApproval,
				RuleID: "deploy/any", Risk: events.RiskHigh, Requester: events.Actor{Type: events.ActorAgent, ID: agent},
				Scopes: []events.ApprovalScope{events.ScopeOnce}, ExpiresAt: events.At(t.Add(15 * time.Minute))}, events.WithToolCall(tc))
			if err != nil {
				return nil, err
			}
			outcome, code, d := events.ApprovalApproved, events.ReasonApproved, events.DecisionAllow
			if rng.IntN(3) == 0 {
				outcome, code, d, run = events.ApprovalDenied, events.ReasonApprovalDenied, events.DecisionDeny, false
			}
			if _, err := emit("approvals", events.ApprovalDecided{Decision: outcome, ReasonCode: code, Scope: events.ScopeOnce,
				Approver: events.Actor{Type: events.ActorHuman, ID: "approver@bench"}, DecidedAt: events.At(t), KeyID: "k1",
				Signature: "G+BLbZSPe2GoUxFjbo5SZfgGt60E00/6BrTmRe88Jw0sldpQibsEVR7JDsSYrOSmGGT1IxR3oOCIJkXuTThUBA=="},
				events.WithApproval(req.EventID), events.WithToolCall(tc), events.WithActor(events.ActorHuman, "approver@bench")); err != nil {
				return nil, err
			}
			if _, err := emit(runner, events.PolicyDecision{Decision: d, ReasonCode: code, RuleID: "deploy/any",
				ApprovalMode: events.ApprovalModeOnce, Risk: events.RiskHigh}, events.WithToolCall(tc), events.WithApproval(req.EventID), policy); err != nil {
				return nil, err
			}
		default:
			run = false
			if _, err := emit(runner, events.PolicyDecision{Decision: events.DecisionDeny, ReasonCode: events.ReasonDeniedByRule, RuleID: "net/deny",
				ApprovalMode: events.ApprovalModeNone, Risk: events.RiskMedium}, events.WithToolCall(tc), policy); err != nil {
				return nil, err
			}
		}
		if run {
			if _, err := emit(runner, events.ToolCallCompleted{ExitCode: rng.IntN(2), DurationMS: uint64(rng.IntN(10000)),
				Stdout: events.Output{Length: 100, SHA256: sum, Text: "ok"}, Stderr: events.Output{SHA256: sum}}, events.WithToolCall(tc)); err != nil {
				return nil, err
			}
		}
	}
	host := hosts[rng.IntN(len(hosts))]
	d, code := events.DecisionAllow, events.ReasonAllowlisted
	if host == "169.254.169.254" || host == "evil.example.com" || host == "10.0.0.5" {
		d, code = events.DecisionDeny, events.ReasonDefaultDeny
	}
	if _, err := emit(runner, events.NetEgress{Phase: events.PhaseDecision, Host: host, Port: 443, Decision: d, ReasonCode: code}, events.WithPolicy("egress", egressPolicySHA)); err != nil {
		return nil, err
	}
	if s%20 == 0 {
		if _, err := emit("detect", events.AlertRaised{RuleID: "egress/denied", RuleVersion: "1", Severity: events.SeverityMedium, GroupKey: sid,
			Count: 1, FirstSeen: events.At(t), LastSeen: events.At(t), MatchedEventIDs: []string{strconv.FormatUint(rows[len(rows)-1].EventID, 10)}, Message: "denied egress", Action: events.AlertNotify}); err != nil {
			return nil, err
		}
	}
	if _, err := emit(runner, events.SessionEnded{Reason: events.EndCompleted, DurationMS: 60000}); err != nil {
		return nil, err
	}
	return rows, nil
}

// egressPolicySHA pins the one egress policy of the bench.
var egressPolicySHA = fmt.Sprintf("%064x", 0xe)
