package query

import (
	"context"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/agentaudit/agentaudit/internal/events"
)

// buildDangling sends, through p, sessions of 2026-01-06 (and one of the
// evening before) whose runners died mid-call: one never recovered, one
// closed by a later runner that resumed the dead runner's chain, one that
// ended with a call that never completed; with calls around them that
// must not show (completed, denied, awaiting or refused approval).
func buildDangling(p *pipeline) {
	exec := func(s *session, h, m, sec, ms int, tc string, root bool, argv ...string) {
		s.ev(at(h, m, sec, ms), events.ProcessExec{PID: 2, PPID: 1, Argv: argv, Exe: "/usr/bin/" + argv[0], Cwd: "/workspace",
			Decision: events.DecisionAllow, ReasonCode: events.ReasonAllowlisted, Root: root}, events.WithToolCall(tc))
	}
	const d = 24 // hours from `day` to 2026-01-06

	z := &session{p: p, id: "sess-zeta", runner: "runner-z", agent: "codex", policy: policyA}
	z.start(at(23, 50, 0, 0))
	z.request(at(23, 50, 1, 0), "tc50", "make", "nightly")
	z.decide(at(23, 50, 1, 100), "tc50", events.DecisionAllow, events.ReasonAllowlisted, "dev-tools/make", events.ApprovalModeNone)
	exec(z, 23, 50, 1, 200, "tc50", true, "make", "nightly") // DANGLING, the evening before

	g := &session{p: p, id: "sess-gamma", runner: "runner-g", agent: "codex", policy: policyA}
	g.start(at(d+9, 0, 0, 0))
	g.request(at(d+9, 0, 1, 0), "tc20", "make", "test")
	g.decide(at(d+9, 0, 1, 100), "tc20", events.DecisionAllow, events.ReasonAllowlisted, "dev-tools/make", events.ApprovalModeNone)
	exec(g, d+9, 0, 1, 200, "tc20", true, "make", "test")
	g.complete(at(d+9, 0, 5, 0), "tc20", 0)
	g.request(at(d+9, 1, 0, 0), "tc21", "make", "bench")
	g.decide(at(d+9, 1, 0, 100), "tc21", events.DecisionAllow, events.ReasonAllowlisted, "dev-tools/make", events.ApprovalModeNone)
	exec(g, d+9, 1, 0, 200, "tc21", true, "make", "bench") // DANGLING: running when the runner died
	g.request(at(d+9, 2, 0, 0), "tc22", "git", "push", "origin", "main")
	g.decide(at(d+9, 2, 0, 100), "tc22", events.DecisionAsk, events.ReasonNeedsApproval, "deploy/git-push", events.ApprovalModeRequired)
	a22 := g.askApproval(at(d+9, 2, 0, 200), "tc22", "deploy/git-push", "git push origin main")
	approve(p, at(d+9, 2, 30, 500), "sess-gamma", a22, "tc22", events.ApprovalApproved, "bob@acme.example") // DANGLING: approved, runner gone
	g.request(at(d+9, 3, 0, 0), "tc23", "rm", "-rf", "/")
	g.decide(at(d+9, 3, 0, 100), "tc23", events.DecisionDeny, events.ReasonDeniedByRule, "fs/destructive", events.ApprovalModeNone)
	g.request(at(d+9, 4, 0, 0), "tc24", "curl", "https://example.com")
	g.decide(at(d+9, 4, 0, 100), "tc24", events.DecisionAsk, events.ReasonNeedsApproval, "net/curl", events.ApprovalModeRequired)
	g.askApproval(at(d+9, 4, 0, 200), "tc24", "net/curl", "curl https://example.com") // never answered
	g.request(at(d+9, 5, 0, 0), "tc25", "make", "deploy")
	g.decide(at(d+9, 5, 0, 100), "tc25", events.DecisionAsk, events.ReasonNeedsApproval, "deploy/make", events.ApprovalModeRequired)
	a25 := g.askApproval(at(d+9, 5, 0, 200), "tc25", "deploy/make", "make deploy")
	approve(p, at(d+9, 5, 10, 0), "sess-gamma", a25, "tc25", events.ApprovalDenied, "carol@acme.example")
	g.decide(at(d+9, 5, 10, 100), "tc25", events.DecisionDeny, events.ReasonApprovalDenied, "deploy/make", events.ApprovalModeNone, events.WithApproval(a25))

	dl := &session{p: p, id: "sess-delta", runner: "runner-d", agent: "claude-code", policy: policyB}
	dl.start(at(d+10, 0, 0, 0))
	dl.request(at(d+10, 0, 1, 0), "tc30", "npm", "run", "build")
	dl.decide(at(d+10, 0, 1, 100), "tc30", events.DecisionAllow, events.ReasonAllowlisted, "dev-tools/npm", events.ApprovalModeNone)
	exec(dl, d+10, 0, 1, 200, "tc30", true, "npm", "run", "build")
	// runner-d dies; runner-r finds its sandbox and closes the session on
	// runner-d's chain.
	p.resume("runner-r", events.ChainKey{SessionID: "sess-delta", RunnerID: "runner-d"})
	lost := []events.Option{events.WithTenant("acme"), events.WithSession("sess-delta", "runner-d"), events.WithActor(events.ActorSystem, "runner-r")}
	p.emit("runner-r", events.ToolCallCompleted{ExitCode: -1, KilledReason: events.KillRunnerLost, ReasonCode: events.ReasonSandboxError,
		Error: "runner runner-d died during the call", Stdout: events.Output{SHA256: zeroSum}, Stderr: events.Output{SHA256: zeroSum}},
		append(lost, events.WithTime(at(d+10, 30, 0, 0)), events.WithToolCall("tc30"))...) // DANGLING, recorded as lost
	p.emit("runner-r", events.SessionEnded{Reason: events.EndRunnerLost, DurationMS: 1800000,
		Counts: events.SessionCounts{ToolCalls: 1, Allowed: 1, Execs: 1}}, append(lost, events.WithTime(at(d+10, 30, 0, 100)))...)

	e := &session{p: p, id: "sess-eps", runner: "runner-e", agent: "claude-code", policy: policyB}
	e.start(at(d+11, 0, 0, 0))
	e.request(at(d+11, 0, 1, 0), "tc40", "ls", "-la")
	e.decide(at(d+11, 0, 1, 100), "tc40", events.DecisionAllow, events.ReasonAllowlisted, "fs/list", events.ApprovalModeNone) // DANGLING: no completion, yet the session ended
	e.ev(at(d+11, 10, 0, 0), events.SessionEnded{Reason: events.EndCompleted, DurationMS: 600000})
}

func TestDanglingCalls(t *testing.T) {
	s := testDB(t)
	p := newPipeline(t)
	buildDangling(p)
	p.load(s)
	q := openReader(t, s.Database())
	head := []string{"tenant", "session_id", "runner_id", "tool_call_id", "tool_name", "command", "requested_at", "allowed_at", "session_ended", "end_reason", "finding"}
	zeta := []string{"acme", "sess-zeta", "runner-z", "tc50", "shell", "make nightly", "2026-01-05 23:50:01", "2026-01-05 23:50:01", "0", "", "no_completion"}
	day2 := [][]string{
		{"acme", "sess-gamma", "runner-g", "tc21", "shell", "make bench", "2026-01-06 09:01:00", "2026-01-06 09:01:00", "0", "", "no_completion"},
		{"acme", "sess-gamma", "runner-g", "tc22", "shell", "git push origin main", "2026-01-06 09:02:00", "2026-01-06 09:02:30", "0", "", "no_completion"},
		{"acme", "sess-delta", "runner-d", "tc30", "shell", "npm run build", "2026-01-06 10:00:01", "2026-01-06 10:00:01", "1", "runner_lost", "runner_lost"},
		{"acme", "sess-eps", "runner-e", "tc40", "shell", "ls -la", "2026-01-06 11:00:01", "2026-01-06 11:00:01", "1", "completed", "no_completion"},
	}
	tests := []struct {
		name   string
		period Period
		want   [][]string
	}{
		{"the day", Period{day.AddDate(0, 0, 1), day.AddDate(0, 0, 2)}, append([][]string{head}, day2...)},
		{"from the evening before", Period{day, day.AddDate(0, 0, 2)}, append([][]string{head, zeta}, day2...)},
		{"the evening before only", Period{day, day.AddDate(0, 0, 1)}, [][]string{head, zeta}},
		{"the day after", Period{day.AddDate(0, 0, 2), day.AddDate(0, 0, 3)}, [][]string{head}},
	}
	r, err := FindReport("dangling_calls")
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			res, err := q.RunReport(context.Background(), r, tc.period, nil)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tc.want, cells(res)); diff != "" {
				t.Errorf("dangling_calls rows (-want +got):\n%s", diff)
			}
		})
	}
	// The timeline tells the story, the later runner's events on the dead
	// runner's chain.
	tl, err := q.Timeline(context.Background(), "sess-delta")
	if err != nil {
		t.Fatal(err)
	}
	var story []string
	for _, row := range tl.Rows {
		story = append(story, Cell(row[1])+" "+Cell(row[2])+" "+Cell(row[5]))
	}
	wantStory := []string{
		"runner-d 1 agent claude-code 1.0 in /srv/ws/sess-delta, image localhost/agentaudit-sandbox:test profile default operator ops@acme.example",
		"runner-d 2 shell: npm run build",
		"runner-d 3 ALLOW allowlisted rule dev-tools/npm risk high",
		"runner-d 4 EXEC ALLOW /usr/bin/npm: npm run build (pid 2, parent 1, the call's top process) allowlisted",
		"runner-d 5 exit -1 in 0s killed runner_lost error runner runner-d died during the call",
		"runner-d 6 ENDED runner_lost after 30m0s",
	}
	if diff := cmp.Diff(wantStory, story); diff != "" {
		t.Errorf("timeline of sess-delta (-want +got):\n%s", diff)
	}

	// The recovered chain is whole: the later runner continued it.
	rep, err := q.Verify(context.Background(), VerifyScope{SessionID: "sess-delta"})
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Findings) != 0 || rep.Events != 6 || rep.Chains != 1 {
		t.Errorf("verify sess-delta: %d events, %d chains, findings %v; want 6 events, 1 chain, none", rep.Events, rep.Chains, rep.Findings)
	}
}
