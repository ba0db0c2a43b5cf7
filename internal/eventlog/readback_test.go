package eventlog

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/agentaudit/agentaudit/internal/events"
	"github.com/agentaudit/agentaudit/internal/testenv"
)

// lostSession is a session whose runner died during its second call, on a
// partition shared with other sessions' events.
type lostSession struct {
	id, runner string
	// events are the session's events on the events topic, in emit order;
	// partition the records written to its partition, in order (session
	// ids), so a test knows which events the last N records hold.
	events    []*events.Envelope
	partition []string
	dangling  *events.Envelope // tool_call.requested of the call that never completed
}

// newEvent builds an event for session sid on emitter runner's chain.
func newEvent(t testing.TB, p events.Payload, sid, runner string, opts ...events.Option) *events.Envelope {
	t.Helper()
	env, err := events.New(p, append([]events.Option{events.WithIDs(testIDs), events.WithTenant("acme"), events.WithSession(sid, runner), events.WithActor(events.ActorSystem, runner)}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	return env
}

// emitLost writes a lost session into tp through producers of their own
// (closed on return, as a dead runner's would be), with other sessions'
// events before, between and after its own.
func emitLost(t testing.TB, brokers []string, tp Topics) *lostSession {
	t.Helper()
	ctx := context.Background()
	ls := &lostSession{id: fmt.Sprintf("sess-lost-%d", time.Now().UnixNano()), runner: "runner-dead"}
	open := func(runner string) *Producer {
		p, err := NewProducer(ctx, brokers, runner, WithTopics(tp), WithAckTimeout(10*time.Second), WithProducerLogger(testenv.Logger(t, slog.LevelDebug)))
		if err != nil {
			t.Fatal(err)
		}
		return p
	}
	dead, detector, others := open(ls.runner), open("detect-1"), open("runner-other")
	defer dead.Close(ctx)
	defer detector.Close(ctx)
	defer others.Close(ctx)
	const n = 3 // partitions of the test topics
	part := partitionFor(tp.Events, []byte(ls.id), n)
	var same, other []string // noise sessions on the session's partition and elsewhere
	for i := 0; len(same) < 3 || len(other) < 2; i++ {
		sid := fmt.Sprintf("%s-noise-%d", ls.id, i)
		if partitionFor(tp.Events, []byte(sid), n) == part {
			same = append(same, sid)
		} else {
			other = append(other, sid)
		}
	}
	noise := func(k int) {
		for i := range k {
			sid := same[i%len(same)]
			if err := others.Emit(ctx, sampleEvent(t, events.TypeToolCallRequested, sid, i)); err != nil {
				t.Fatal(err)
			}
			ls.partition = append(ls.partition, sid)
			if err := others.Emit(ctx, sampleEvent(t, events.TypeProcessExec, other[i%len(other)], i)); err != nil {
				t.Fatal(err)
			}
		}
	}
	emit := func(p *Producer, env *events.Envelope) *events.Envelope {
		t.Helper()
		if err := p.Emit(ctx, env); err != nil {
			t.Fatalf("emit %s: %v", env.EventType, err)
		}
		ls.events = append(ls.events, env)
		ls.partition = append(ls.partition, ls.id)
		return env
	}
	run := func(tc string, argv ...string) *events.Envelope {
		req := emit(dead, newEvent(t, events.ToolCallRequested{ToolName: "shell", Arguments: events.ToolArguments{Argv: argv}, ArgumentsSHA256: sha(2)},
			ls.id, ls.runner, events.WithToolCall(tc), events.WithActor(events.ActorAgent, "agent-1")))
		emit(dead, newEvent(t, events.PolicyDecision{Decision: events.DecisionAllow, ReasonCode: events.ReasonAllowlisted, ApprovalMode: events.ApprovalModeNone},
			ls.id, ls.runner, events.WithToolCall(tc), events.WithParent(req.EventID), events.WithPolicy("default", sha(5))))
		bounded, cut := events.BoundArgv(argv)
		emit(dead, newEvent(t, events.ProcessExec{PID: 2, PPID: 1, Argv: bounded, ArgvTruncated: cut, Exe: "/usr/bin/" + argv[0],
			Decision: events.DecisionAllow, ReasonCode: events.ReasonAllowlisted, Root: true}, ls.id, ls.runner, events.WithToolCall(tc), events.WithParent(req.EventID)))
		return req
	}

	noise(12)
	emit(dead, newEvent(t, events.SessionStarted{Workspace: "/srv/work/lost", SandboxProfileSHA256: sha(1), Image: "localhost/agentaudit-sandbox:test"}, ls.id, ls.runner))
	noise(4)
	first := run("tc-1", "make", "test")
	emit(dead, newEvent(t, events.ToolCallCompleted{ExitCode: 0, DurationMS: 40, Stdout: events.Output{SHA256: sha(3)}, Stderr: events.Output{SHA256: sha(4)}},
		ls.id, ls.runner, events.WithToolCall("tc-1"), events.WithParent(first.EventID)))
	emit(detector, newEvent(t, events.AlertRaised{RuleID: "exec-burst", RuleVersion: "1", Severity: events.SeverityLow, GroupKey: ls.id, Count: 1,
		FirstSeen: events.At(time.Now()), LastSeen: events.At(time.Now()), MatchedEventIDs: []string{first.EventID}, Message: "m", Action: events.AlertNotify},
		ls.id, "detect-1", events.WithActor(events.ActorRule, "exec-burst")))
	noise(5)
	ls.dangling = run("tc-2", "make", "bench")
	noise(30)
	return ls
}

// eventIDs lists event ids, for diffs that name the events.
func eventIDs(evs []*events.Envelope) []string {
	out := make([]string, len(evs))
	for i, e := range evs {
		out[i] = e.EventType + "/" + e.EventID
	}
	return out
}

// lastOf returns the events among the last n records of the partition.
func (ls *lostSession) lastOf(n int) []*events.Envelope {
	k := 0
	for _, sid := range ls.partition[max(0, len(ls.partition)-n):] {
		if sid == ls.id {
			k++
		}
	}
	return ls.events[len(ls.events)-k:]
}

// testReadSessionAndResume is the behaviour both Kafkas must show: a later
// runner reads a lost session back, continues the dead runner's chain
// with the lost call's completion and the session's end, and the chain
// read back again verifies whole.
func testReadSessionAndResume(t *testing.T, brokers []string, tp Topics) {
	ctx := context.Background()
	ls := emitLost(t, brokers, tp)
	later, err := NewProducer(ctx, brokers, "runner-later", WithTopics(tp), WithAckTimeout(10*time.Second), WithProducerLogger(testenv.Logger(t, slog.LevelDebug)))
	if err != nil {
		t.Fatal(err)
	}
	defer later.Close(ctx)

	tests := []struct {
		name    string
		session string
		opts    []ReadOption
		want    []*events.Envelope
		wantErr error
	}{
		{"tail holds it all", ls.id, nil, ls.events, nil},
		{"widens from a short tail", ls.id, []ReadOption{WithReadTail(3)}, ls.events, nil},
		{"limit hit first", ls.id, []ReadOption{WithReadTail(3), WithReadLimit(35)}, ls.lastOf(35), ErrSessionStartNotFound},
		{"unknown session", ls.id + "-none", []ReadOption{WithReadTail(7)}, nil, ErrSessionStartNotFound},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := later.ReadSession(ctx, tc.session, tc.opts...)
			if !errors.Is(err, tc.wantErr) || (tc.wantErr == nil && err != nil) {
				t.Fatalf("ReadSession error = %v, want %v", err, tc.wantErr)
			}
			if diff := cmp.Diff(eventIDs(tc.want), eventIDs(got)); diff != "" {
				t.Errorf("events read back (-want +got):\n%s", diff)
			}
			if err == nil {
				if diff := cmp.Diff(tc.want, got); diff != "" {
					t.Errorf("events read back differ from those sent (-want +got):\n%s", diff)
				}
			}
		})
	}

	// Close the session on the dead runner's chain, from its tip.
	evs, err := later.ReadSession(ctx, ls.id, WithReadTail(3))
	if err != nil {
		t.Fatal(err)
	}
	k := events.ChainKey{SessionID: ls.id, RunnerID: ls.runner}
	var tip *events.Envelope
	for _, e := range evs {
		if e.Key() == k {
			tip = e
		}
	}
	later.Resume(k, tip.Seq, tip.Hash)
	done := newEvent(t, events.ToolCallCompleted{ExitCode: -1, KilledReason: events.KillRunnerLost, ReasonCode: events.ReasonSandboxError,
		Error: "runner runner-dead died during the call", Stdout: events.Output{SHA256: sha(3)}, Stderr: events.Output{SHA256: sha(4)}},
		ls.id, ls.runner, events.WithToolCall(ls.dangling.ToolCallID), events.WithParent(ls.dangling.EventID), events.WithActor(events.ActorSystem, "runner-later"))
	end := newEvent(t, events.SessionEnded{Reason: events.EndRunnerLost, Counts: events.SessionCounts{ToolCalls: 2, Allowed: 2, Execs: 2}},
		ls.id, ls.runner, events.WithActor(events.ActorSystem, "runner-later"))
	for _, e := range []*events.Envelope{done, end} {
		if err := later.EmitAfter(ctx, e); err != nil {
			t.Fatal(err)
		}
	}
	later.ForgetChain(k)
	if got, want := []uint64{done.Seq, end.Seq}, []uint64{tip.Seq + 1, tip.Seq + 2}; !cmp.Equal(got, want) {
		t.Errorf("resumed seqs = %v, want %v", got, want)
	}
	again, err := later.ReadSession(ctx, ls.id)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(eventIDs(append(ls.events, done, end)), eventIDs(again)); diff != "" {
		t.Errorf("session after recovery (-want +got):\n%s", diff)
	}
	if err := events.VerifyChain(again); err != nil {
		t.Errorf("chains after recovery: %v", err)
	}
}

func TestReadSessionKfake(t *testing.T) {
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(3, DefaultTopics.Events, DefaultTopics.Approvals, DefaultTopics.DLQ))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	testReadSessionAndResume(t, c.ListenAddrs(), DefaultTopics)
}

// TestKafkaReadSession runs the same against the real broker.
func TestKafkaReadSession(t *testing.T) {
	brokers := testenv.Kafka(t)
	testReadSessionAndResume(t, brokers, uniqueTopics(t, brokers))
}

// TestResumeWithoutReadIsABreak: a chain continued anywhere but at its tip
// does not verify, so a runner cannot paper over a lost session by
// guessing.
func TestResumeWithoutReadIsABreak(t *testing.T) {
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(1, DefaultTopics.Events, DefaultTopics.Approvals, DefaultTopics.DLQ))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ctx := context.Background()
	dead, err := NewProducer(ctx, c.ListenAddrs(), "runner-dead")
	if err != nil {
		t.Fatal(err)
	}
	var sent []*events.Envelope
	for i := range 3 {
		e := sampleEvent(t, events.TypeToolCallRequested, "s1", i)
		if err := dead.Emit(ctx, e); err != nil {
			t.Fatal(err)
		}
		sent = append(sent, e)
	}
	dead.Close(ctx)
	k := events.ChainKey{SessionID: "s1", RunnerID: "runner-dead"}
	tip := sent[len(sent)-1]
	tests := []struct {
		name      string
		seq       uint64
		hash      string
		wantBreak events.ChainBreak // "" = whole
	}{
		{"at the tip", tip.Seq, tip.Hash, ""},
		{"one event back", tip.Seq - 1, sent[1].Hash, events.BreakReorder},
		{"not resumed", 0, "", events.BreakReorder},
		{"wrong hash", tip.Seq, sent[0].Hash, events.BreakWrongPrev},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			later, err := NewProducer(ctx, c.ListenAddrs(), "runner-later")
			if err != nil {
				t.Fatal(err)
			}
			defer later.Close(ctx)
			if tc.hash != "" {
				later.Resume(k, tc.seq, tc.hash)
			}
			end := newEvent(t, events.SessionEnded{Reason: events.EndRunnerLost}, "s1", "runner-dead")
			if err := later.Emit(ctx, end); err != nil {
				t.Fatal(err)
			}
			err = events.VerifyChain(append(append([]*events.Envelope(nil), sent...), end))
			var ce *events.ChainError
			switch {
			case tc.wantBreak == "" && err != nil:
				t.Errorf("VerifyChain = %v, want whole", err)
			case tc.wantBreak != "" && (!errors.As(err, &ce) || ce.Break != tc.wantBreak):
				t.Errorf("VerifyChain = %v, want break %s", err, tc.wantBreak)
			}
		})
	}
}

// TestPartitionForMatchesProducer: the partition ReadSession reads is the
// one the producer's records land on.
func TestPartitionForMatchesProducer(t *testing.T) {
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(5, DefaultTopics.Events, DefaultTopics.Approvals, DefaultTopics.DLQ))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ctx := context.Background()
	p, err := NewProducer(ctx, c.ListenAddrs(), "runner-a")
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close(ctx)
	want := map[string]int32{}
	for i := range 40 {
		sid := fmt.Sprintf("sess-%d", i)
		if err := p.Emit(ctx, sampleEvent(t, events.TypeProcessExec, sid, i)); err != nil {
			t.Fatal(err)
		}
		want[sid] = partitionFor(DefaultTopics.Events, []byte(sid), 5)
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(c.ListenAddrs()...), kgo.ConsumeTopics(DefaultTopics.Events), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	got := map[string]int32{}
	cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	for len(got) < len(want) && cctx.Err() == nil {
		cl.PollFetches(cctx).EachRecord(func(r *kgo.Record) { got[string(r.Key)] = r.Partition })
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("partitions (-partitionFor +produced):\n%s", diff)
	}
}
