package faults

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/agentaudit/agentaudit/internal/eventlog"
	"github.com/agentaudit/agentaudit/internal/events"
	"github.com/agentaudit/agentaudit/internal/testenv"
)

// load is several runner-like writers, each an eventlog.Producer with its
// own spool, running sessions of tool calls the way cmd/runner does:
// the request and its decision through Emit (audit before act), the
// completion through EmitAfter; a request Kafka did not take is answered
// with an audit_unavailable denial (EmitAfter) and its call never "runs".
type load struct {
	t       testing.TB
	writers []*writer
	stop    chan struct{}
	wg      sync.WaitGroup
	// limit bounds the events each writer issues; more raises it.
	limit atomic.Int64
}

type writer struct {
	id    string
	p     *eventlog.Producer
	ids   *events.IDGen
	mu    sync.Mutex
	sent  []string // ids Emit/EmitAfter took: acknowledged, or spooled to be
	calls atomic.Int64
	deny  atomic.Int64 // calls denied as audit_unavailable
	// refused counts sessions whose start Kafka did not take.
	refused atomic.Int64
	// maxWait is the longest an Emit (audit before act) waited, in ns.
	maxWait atomic.Int64
	// firstDeny and lastDeny are when Emit last and first returned
	// ErrAuditUnavailable, in Unix ns (0: never).
	firstDeny, lastDeny atomic.Int64
	err                 error
}

// newLoad opens n writers on e's topics. pace is the pause between tool
// calls of one writer; limit bounds each writer's events.
func newLoad(t testing.TB, e *env, n int, limit int) *load {
	t.Helper()
	return newLoadAck(t, e, n, limit, 2*time.Second)
}

// newLoadAck is newLoad with each Emit waiting up to ack for Kafka.
func newLoadAck(t testing.TB, e *env, n int, limit int, ack time.Duration) *load {
	t.Helper()
	l := &load{t: t, stop: make(chan struct{})}
	l.limit.Store(int64(limit))
	log := testenv.Logger(t, slog.LevelWarn)
	for i := range n {
		id := fmt.Sprintf("fault-runner-%d-%s", i, suffix())
		p, err := eventlog.NewProducer(context.Background(), e.brokers, id, eventlog.WithTopics(e.topics),
			eventlog.WithAckTimeout(ack), eventlog.WithSpool(t.TempDir(), 64<<20), eventlog.WithProducerLogger(log))
		if err != nil {
			t.Fatal(err)
		}
		// Node ids 300.. are the suite's; every writer has its own.
		g, err := events.NewIDGen(int64(300 + i))
		if err != nil {
			t.Fatal(err)
		}
		l.writers = append(l.writers, &writer{id: id, p: p, ids: g})
	}
	t.Cleanup(func() {
		for _, w := range l.writers {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			w.p.Close(ctx)
			cancel()
		}
	})
	return l
}

// run starts every writer: sessions of ten calls, a call every pace.
func (l *load) run(pace time.Duration) {
	for _, w := range l.writers {
		l.wg.Add(1)
		go func() {
			defer l.wg.Done()
			w.err = w.loop(l.stop, pace, func() int { return int(l.limit.Load()) })
		}()
	}
}

// more lets every writer issue n more events.
func (l *load) more(n int) { l.limit.Add(int64(n)) }

// halt stops the writers after their current call and fails on any
// event that could be neither sent nor spooled.
func (l *load) halt() {
	l.t.Helper()
	select {
	case <-l.stop:
	default:
		close(l.stop)
	}
	l.wg.Wait()
	for _, w := range l.writers {
		if w.err != nil {
			l.t.Errorf("writer %s: %v", w.id, w.err)
		}
	}
}

// drain waits until every writer's spool is delivered, within timeout.
func (l *load) drain(timeout time.Duration) {
	l.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	for _, w := range l.writers {
		for w.p.Pending() > 0 && ctx.Err() == nil {
			w.p.Flush(ctx)
			if w.p.Pending() > 0 {
				time.Sleep(200 * time.Millisecond)
			}
		}
		if n := w.p.Pending(); n > 0 {
			l.t.Errorf("writer %s: %d events still spooled %s after the load", w.id, n, timeout)
		}
	}
}

// sent returns every id the writers' producers took.
func (l *load) sent() []string {
	var out []string
	for _, w := range l.writers {
		w.mu.Lock()
		out = append(out, w.sent...)
		w.mu.Unlock()
	}
	return out
}

// acked is how many events Kafka acknowledged: directly, or from a spool.
func (l *load) acked() int64 {
	var n int64
	for _, w := range l.writers {
		s := w.p.Stats()
		n += s.Acked.Load() + s.Drained.Load()
	}
	return n
}

func (l *load) stats() string {
	var calls, denied, spooled, refused int64
	for _, w := range l.writers {
		calls += w.calls.Load()
		denied += w.deny.Load()
		refused += w.refused.Load()
		spooled += w.p.Stats().Spooled.Load()
	}
	return fmt.Sprintf("%d writers, %d tool calls (%d denied audit_unavailable), %d sessions refused, %d events spooled and replayed",
		len(l.writers), calls, denied, refused, spooled)
}

// loop runs sessions until stop; at its bound a writer idles until it is
// stopped or given more.
func (w *writer) loop(stop <-chan struct{}, pace time.Duration, limit func() int) error {
	for s := 0; ; s++ {
		for w.issued() >= limit()-4 {
			select {
			case <-stop:
				return nil
			case <-time.After(pace):
			}
		}
		sid := fmt.Sprintf("sess-%s-%04d", w.id, s)
		if _, err := w.session(sid, stop, pace, limit); err != nil {
			return err
		}
		select {
		case <-stop:
			return nil
		default:
		}
	}
}

func (w *writer) issued() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return len(w.sent)
}

// session runs one session; more is false once the writer should stop.
func (w *writer) session(sid string, stop <-chan struct{}, pace time.Duration, limit func() int) (more bool, err error) {
	ctx := context.Background()
	started := time.Now()
	_, err = w.emit(ctx, false, sid, events.SessionStarted{Workspace: "/srv/work/" + sid,
		SandboxProfileSHA256: hexOf(sid), Image: "localhost/agentaudit-sandbox:fault", Mode: "exec"})
	if errors.Is(err, eventlog.ErrAuditUnavailable) {
		// The session is refused, as the runner refuses it; its start
		// event is spooled and its end records why.
		w.refused.Add(1)
		_, err = w.emit(ctx, true, sid, events.SessionEnded{Reason: events.EndError})
		w.p.Forget(sid)
		// Back off as a client would before it opens another.
		select {
		case <-stop:
			return false, err
		case <-time.After(5 * pace):
		}
		return w.issued() < limit()-4, err
	}
	if err != nil {
		return false, err
	}
	more = true
	for i := 0; i < 10 && more; i++ {
		select {
		case <-stop:
			more = false
		case <-time.After(pace):
		}
		if w.issued() >= limit()-4 {
			more = false
		}
		if !more {
			break
		}
		if err := w.call(ctx, sid, i); err != nil {
			return false, err
		}
	}
	_, err = w.emit(ctx, true, sid, events.SessionEnded{Reason: events.EndCompleted, DurationMS: uint64(time.Since(started).Milliseconds())})
	w.p.Forget(sid)
	return more, err
}

// call is one tool call as the runner records it.
func (w *writer) call(ctx context.Context, sid string, i int) error {
	w.calls.Add(1)
	callID := fmt.Sprintf("call-%s-%d", sid, i)
	cmd := fmt.Sprintf("echo %d", i)
	req, err := w.emit(ctx, false, sid, events.ToolCallRequested{ToolName: "shell",
		Arguments: events.ToolArguments{Argv: []string{"sh", "-c", cmd}, Cwd: "/workspace"}, ArgumentsSHA256: hexOf(cmd)},
		events.WithToolCall(callID))
	if errors.Is(err, eventlog.ErrAuditUnavailable) {
		w.deny.Add(1)
		_, err = w.emit(ctx, true, sid, events.PolicyDecision{Decision: events.DecisionDeny, ReasonCode: events.ReasonAuditUnavailable,
			ApprovalMode: events.ApprovalModeNone}, events.WithToolCall(callID), events.WithParent(req), events.WithPolicy("fault", hexOf("policy")))
		return err
	}
	if err != nil {
		return err
	}
	dec, err := w.emit(ctx, false, sid, events.PolicyDecision{Decision: events.DecisionAllow, ReasonCode: events.ReasonAllowlisted,
		RuleID: "dev-tools", ApprovalMode: events.ApprovalModeNone}, events.WithToolCall(callID), events.WithParent(req), events.WithPolicy("fault", hexOf("policy")))
	if errors.Is(err, eventlog.ErrAuditUnavailable) {
		w.deny.Add(1)
		return nil // the call does not run: nothing to complete
	}
	if err != nil {
		return err
	}
	_, err = w.emit(ctx, true, sid, events.ToolCallCompleted{ExitCode: 0, DurationMS: 3,
		Stdout: events.Output{Length: 2, SHA256: hexOf("0\n"), Text: "0\n"}, Stderr: events.Output{SHA256: hexOf("")}},
		events.WithToolCall(callID), events.WithParent(dec))
	return err
}

// emit builds and writes one event. It returns the event's id, and the
// producer's error; an event refused with ErrAuditUnavailable is spooled
// (it is on its chain), so it counts as sent.
func (w *writer) emit(ctx context.Context, after bool, sid string, p events.Payload, opts ...events.Option) (string, error) {
	env, err := events.New(p, append([]events.Option{events.WithIDs(w.ids), events.WithTenant("acme"),
		events.WithSession(sid, ""), events.WithActor(events.ActorAgent, "fault-agent"), events.WithAgent("fault-agent", "1")}, opts...)...)
	if err != nil {
		return "", err
	}
	if after {
		err = w.p.EmitAfter(ctx, env)
	} else {
		began := time.Now()
		err = w.p.Emit(ctx, env)
		if d := int64(time.Since(began)); d > w.maxWait.Load() {
			w.maxWait.Store(d)
		}
		if errors.Is(err, eventlog.ErrAuditUnavailable) {
			now := time.Now().UnixNano()
			w.firstDeny.CompareAndSwap(0, now)
			w.lastDeny.Store(now)
		}
	}
	if err == nil || errors.Is(err, eventlog.ErrAuditUnavailable) {
		if s := w.p.Stats(); s.SpoolFailure.Load() > 0 {
			return env.EventID, fmt.Errorf("event %s could not be spooled", env.EventID)
		}
		w.mu.Lock()
		w.sent = append(w.sent, env.EventID)
		w.mu.Unlock()
	}
	return env.EventID, err
}

func hexOf(s string) string {
	const digits = "0123456789abcdef"
	var b strings.Builder
	h := uint64(14695981039346656037)
	for i := 0; i < len(s); i++ {
		h = (h ^ uint64(s[i])) * 1099511628211
	}
	for i := 0; i < 64; i++ {
		b.WriteByte(digits[(h>>(uint(i%16)*4))&15])
	}
	return b.String()
}
