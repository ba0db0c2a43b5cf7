package runner

import (
	"context"
	"errors"
	"fmt"
	"log/slog"

	"github.com/agentaudit/agentaudit/internal/eventlog"
	"github.com/agentaudit/agentaudit/internal/events"
)

// LostSession is a session whose runner died; a later start of the same
// runner found its sandbox, removed it and recorded its end.
type LostSession struct {
	SessionID string
	// Dangling are the calls that were allowed and never completed:
	// each got a tool_call.completed with killed_reason runner_lost.
	Dangling []string
	// AlreadyEnded: the chain already held session.ended (the runner died
	// after recording it); nothing was added.
	AlreadyEnded bool
}

// chainLog is what recording a lost session needs of the producer.
type chainLog interface {
	Flush(ctx context.Context) error
	ReadSession(ctx context.Context, sessionID string, opts ...eventlog.ReadOption) ([]*events.Envelope, error)
	Resume(k events.ChainKey, seq uint64, hash string)
	ForgetChain(k events.ChainKey)
	EmitAfter(ctx context.Context, e *events.Envelope) error
}

// recordLost appends, on the dead runner's chain of sessionID, a
// tool_call.completed (killed_reason runner_lost) for every call that was
// allowed and never completed, and session.ended with reason runner_lost.
// The chain is read back from Kafka after the spool is drained, so it
// continues from its real tip and stays gapless.
func recordLost(ctx context.Context, log chainLog, ids *events.IDGen, tenant, runnerID, sessionID string) (LostSession, error) {
	ls := LostSession{SessionID: sessionID}
	if err := log.Flush(ctx); err != nil {
		return ls, fmt.Errorf("runner: drain the spool before reading session %s back: %w", sessionID, err)
	}
	evs, err := log.ReadSession(ctx, sessionID)
	if err != nil && !errors.Is(err, eventlog.ErrSessionStartNotFound) {
		return ls, err
	}
	key := events.ChainKey{SessionID: sessionID, RunnerID: runnerID}
	var chain []*events.Envelope
	for _, e := range evs {
		if e.RunnerID == runnerID {
			chain = append(chain, e)
		}
	}
	if len(chain) == 0 {
		return ls, fmt.Errorf("runner: session %s: no events of runner %s found to continue", sessionID, runnerID)
	}
	tip := chain[len(chain)-1]
	if tip.EventType == events.TypeSessionEnded {
		ls.AlreadyEnded = true
		return ls, nil
	}
	counts, dangling, started := foldLost(chain)
	log.Resume(key, tip.Seq, tip.Hash)
	defer log.ForgetChain(key)
	base := func(extra ...events.Option) []events.Option {
		return append([]events.Option{events.WithEventID(ids.Next().String()), events.WithTenant(orDefault(tip.Tenant, tenant)),
			events.WithSession(sessionID, runnerID), events.WithActor(events.ActorSystem, runnerID)}, extra...)
	}
	for _, d := range dangling {
		env, err := events.New(events.ToolCallCompleted{
			ExitCode: -1, KilledReason: events.KillRunnerLost, ReasonCode: events.ReasonSandboxError,
			Error:  "the runner died during the call; the next runner start removed its sandbox, and what the call did is unknown",
			Stdout: emptyOutput(), Stderr: emptyOutput(),
		}, base(events.WithToolCall(d.callID), events.WithParent(d.parent))...)
		if err == nil {
			err = log.EmitAfter(ctx, env)
		}
		if err != nil {
			return ls, fmt.Errorf("runner: record lost call %s: %w", d.callID, err)
		}
		ls.Dangling = append(ls.Dangling, d.callID)
	}
	var dur uint64
	if started != nil {
		dur = uint64(max(tip.EventTime.Sub(started.EventTime).Milliseconds(), 0))
	}
	env, err := events.New(events.SessionEnded{Reason: events.EndRunnerLost, DurationMS: dur, Counts: counts,
		Error: "the runner died; a later start of the same runner found the session's sandbox and removed it"}, base()...)
	if err == nil {
		err = log.EmitAfter(ctx, env)
	}
	if err != nil {
		return ls, fmt.Errorf("runner: record the end of lost session %s: %w", sessionID, err)
	}
	return ls, nil
}

type danglingCall struct{ callID, parent string }

// foldLost counts a lost session's events and finds its calls that were
// allowed (their last decision) and never completed.
func foldLost(chain []*events.Envelope) (events.SessionCounts, []danglingCall, *events.Envelope) {
	var n events.SessionCounts
	var started *events.Envelope
	type callInfo struct {
		allowed   bool
		completed bool
		parent    string
	}
	calls := map[string]*callInfo{}
	var order []string
	get := func(id string) *callInfo {
		c := calls[id]
		if c == nil {
			c = &callInfo{}
			calls[id] = c
			order = append(order, id)
		}
		return c
	}
	for _, e := range chain {
		p, err := e.DecodePayload()
		if err != nil {
			continue
		}
		switch v := p.(type) {
		case *events.SessionStarted:
			started = e
		case *events.ToolCallRequested:
			n.ToolCalls++
			get(e.ToolCallID)
		case *events.PolicyDecision:
			c := get(e.ToolCallID)
			c.allowed, c.parent = v.Decision == events.DecisionAllow, e.EventID
			switch v.Decision {
			case events.DecisionAllow:
				n.Allowed++
			case events.DecisionAsk:
				n.Asked++
			default:
				n.Denied++
			}
		case *events.ToolCallCompleted:
			get(e.ToolCallID).completed = true
		case *events.ProcessExec:
			n.Execs++
			if v.Decision == events.DecisionDeny {
				n.ExecsDenied++
			}
		case *events.SandboxViolation:
			n.Violations++
		case *events.NetEgress:
			if v.Phase == events.PhaseDecision && v.Decision == events.DecisionAllow {
				n.EgressAllowed++
			} else if v.Phase == events.PhaseDecision && v.Decision == events.DecisionDeny {
				n.EgressDenied++
			}
		}
	}
	var dangling []danglingCall
	for _, id := range order {
		if c := calls[id]; id != "" && c.allowed && !c.completed {
			dangling = append(dangling, danglingCall{callID: id, parent: c.parent})
		}
	}
	return n, dangling, started
}

func emptyOutput() events.Output {
	st := streamOf(nil)
	return events.Output{Length: 0, SHA256: st.SHA256}
}

// recoverLost records the end of every session in lost (sessions whose
// sandboxes a start of this runner found without their runner).
func recoverLost(ctx context.Context, log chainLog, ids *events.IDGen, tenant, runnerID string, lost []string, l *slog.Logger) []LostSession {
	var out []LostSession
	for _, id := range lost {
		ls, err := recordLost(ctx, log, ids, tenant, runnerID, id)
		if err != nil {
			l.Error("lost session's end not recorded", "session", id, "err", err)
			continue
		}
		l.Warn("recorded the end of a session whose runner died", "session", id, "dangling_calls", len(ls.Dangling),
			"already_ended", ls.AlreadyEnded)
		out = append(out, ls)
	}
	return out
}
