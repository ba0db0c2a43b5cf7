package runner

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"log/slog"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/agentaudit/agentaudit/internal/approvals/signing"
	"github.com/agentaudit/agentaudit/internal/eventlog"
	"github.com/agentaudit/agentaudit/internal/events"
	"github.com/agentaudit/agentaudit/internal/policy"
)

// fakeEmitter stamps events on per-session chains (which validates them
// against the schemas, like the real producer) and keeps them in memory.
// With down set, Emit fails like a producer whose Kafka is gone.
type fakeEmitter struct {
	id   string
	down atomic.Bool

	mu      sync.Mutex
	chains  map[events.ChainKey]*events.Chain
	acked   []*events.Envelope
	spooled []*events.Envelope
	added   chan struct{}
	keep    bool // keep acknowledged events (benchmarks drop them)
}

func newFakeEmitter(id string) *fakeEmitter {
	return &fakeEmitter{id: id, chains: map[events.ChainKey]*events.Chain{}, added: make(chan struct{}, 1000), keep: true}
}

func (f *fakeEmitter) RunnerID() string { return f.id }
func (f *fakeEmitter) Forget(string)    {}
func (f *fakeEmitter) stamp(e *events.Envelope) error {
	if e.RunnerID == "" {
		e.RunnerID = f.id
	}
	c := f.chains[e.Key()]
	if c == nil {
		c = events.NewChain(e.Key())
		f.chains[e.Key()] = c
	}
	return c.Stamp(e)
}

func (f *fakeEmitter) Emit(_ context.Context, e *events.Envelope) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.stamp(e); err != nil {
		return err
	}
	if f.down.Load() {
		f.spooled = append(f.spooled, e)
		return eventlog.ErrAuditUnavailable
	}
	if f.keep {
		f.acked = append(f.acked, e)
	}
	select {
	case f.added <- struct{}{}:
	default:
	}
	return nil
}

func (f *fakeEmitter) EmitAfter(_ context.Context, e *events.Envelope) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.stamp(e); err != nil {
		return err
	}
	if f.down.Load() {
		f.spooled = append(f.spooled, e)
		return nil
	}
	if f.keep {
		f.acked = append(f.acked, e)
	}
	select {
	case f.added <- struct{}{}:
	default:
	}
	return nil
}

// all returns acknowledged and spooled events, in stamping order per list.
func (f *fakeEmitter) all() []*events.Envelope {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append(append([]*events.Envelope(nil), f.acked...), f.spooled...)
}

// types lists the event types of one session's events, acked then spooled.
func (f *fakeEmitter) types(session string) []string {
	var out []string
	for _, e := range f.all() {
		if e.SessionID == session {
			out = append(out, e.EventType)
		}
	}
	return out
}

// waitFor returns the first acknowledged event of type typ in session.
func (f *fakeEmitter) waitFor(t *testing.T, session, typ string, skip int) *events.Envelope {
	t.Helper()
	deadline := time.After(5 * time.Second)
	for {
		n := 0
		for _, e := range f.all() {
			if e.SessionID == session && e.EventType == typ {
				if n == skip {
					return e
				}
				n++
			}
		}
		select {
		case <-f.added:
		case <-time.After(20 * time.Millisecond):
		case <-deadline:
			t.Fatalf("no %s event #%d in session %s; have %v", typ, skip+1, session, f.types(session))
		}
	}
}

// decisions returns (decision, reason, approval mode) of every
// policy.decision in session.
func (f *fakeEmitter) decisions(t *testing.T, session string) [][3]string {
	t.Helper()
	var out [][3]string
	for _, e := range f.all() {
		if e.SessionID != session || e.EventType != events.TypePolicyDecision {
			continue
		}
		p, err := e.DecodePayload()
		if err != nil {
			t.Fatal(err)
		}
		d := p.(*events.PolicyDecision)
		out = append(out, [3]string{string(d.Decision), string(d.ReasonCode), string(d.ApprovalMode)})
	}
	return out
}

// fakeSandbox records what it was asked to run.
type fakeSandbox struct {
	mu      sync.Mutex
	execs   [][]string
	started int
	closed  int
	fail    error
	result  func(req ExecRequest) ExecResult
}

func (f *fakeSandbox) Start(_ context.Context, sessionID string, spec SandboxSpec) (SandboxSession, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.fail != nil {
		return nil, f.fail
	}
	f.started++
	return &fakeSandboxSession{f: f}, nil
}

func (f *fakeSandbox) ran() [][]string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([][]string(nil), f.execs...)
}

type fakeSandboxSession struct{ f *fakeSandbox }

func (s *fakeSandboxSession) Exec(_ context.Context, req ExecRequest) (ExecResult, error) {
	s.f.mu.Lock()
	s.f.execs = append(s.f.execs, append([]string{req.Cwd}, req.Argv...))
	res := s.f.result
	s.f.mu.Unlock()
	if res != nil {
		return res(req), nil
	}
	out := []byte("ran: " + strings.Join(req.Argv, " ") + "\n")
	sum := sha256.Sum256(out)
	return ExecResult{ExitCode: 0, Stdout: Stream{Data: out, Length: uint64(len(out)), SHA256: hex.EncodeToString(sum[:])},
		Stderr: streamOf(nil), Duration: time.Millisecond}, nil
}

func (s *fakeSandboxSession) Hold(context.Context) error { return nil }
func (s *fakeSandboxSession) Release() error             { return nil }
func (s *fakeSandboxSession) Done() <-chan struct{}      { return nil }

func (s *fakeSandboxSession) Info() SandboxInfo {
	return SandboxInfo{Profile: "default", ProfileSHA256: strings.Repeat("ab", 32), Image: "localhost/fake:1", ImageID: strings.Repeat("cd", 32)}
}

func (s *fakeSandboxSession) Close(context.Context) error {
	s.f.mu.Lock()
	defer s.f.mu.Unlock()
	s.f.closed++
	return nil
}

// rig is a runner on fakes with one approver key.
type rig struct {
	r      *Runner
	em     *fakeEmitter
	sb     *fakeSandbox
	signer signing.Signer
	ws     string
	ids    *events.IDGen
}

type tlog struct{ t testing.TB }

func (w tlog) Write(p []byte) (int, error) { w.t.Log(strings.TrimSpace(string(p))); return len(p), nil }

func testLogger(t testing.TB) *slog.Logger {
	return slog.New(slog.NewTextHandler(tlog{t}, &slog.HandlerOptions{Level: slog.LevelInfo}))
}

func newRig(t *testing.T, opts ...Option) *rig { return newRigB(t, opts...) }

func newRigB(t testing.TB, opts ...Option) *rig {
	t.Helper()
	signer, pub, err := signing.GenerateKey("approvals-test-1")
	if err != nil {
		t.Fatal(err)
	}
	ks, err := signing.NewKeySet([]signing.PublicKey{pub})
	if err != nil {
		t.Fatal(err)
	}
	pol, err := policy.Default()
	if err != nil {
		t.Fatal(err)
	}
	em := newFakeEmitter("runner-unit")
	sb := &fakeSandbox{}
	base := []Option{WithApprovalKeys(ks), WithTenant("acme"), WithOperator("alice")}
	if _, ok := t.(*testing.T); ok {
		base = append(base, WithLogger(testLogger(t)))
	}
	r, err := New(em, sb, pol, append(base, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	ids, _ := events.NewIDGen(1001 % 1024)
	if _, ok := t.(*testing.B); ok {
		em.added = make(chan struct{}, 1)
		em.keep = false
	}
	return &rig{r: r, em: em, sb: sb, signer: signer, ws: t.TempDir(), ids: ids}
}

func (g *rig) open(t *testing.T) *Session {
	t.Helper()
	s, err := g.r.OpenSession(context.Background(), SessionOptions{Workspace: g.ws, Mode: "mcp",
		Client: &events.ClientInfo{Name: "test-agent", Version: "1.0"}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close(context.Background(), events.EndCompleted) })
	return s
}

// decide builds a decision for the approval.requested req, signed by s.
func (g *rig) decide(t *testing.T, s signing.Signer, req *events.Envelope, outcome events.ApprovalOutcome, scope events.ApprovalScope) *events.Envelope {
	t.Helper()
	ref, err := signing.RefOf(req)
	if err != nil {
		t.Fatal(err)
	}
	return signedDecision(t, s, g.ids, ref, outcome, scope)
}

func signedDecision(t testing.TB, s signing.Signer, ids *events.IDGen, ref signing.RequestRef, outcome events.ApprovalOutcome, scope events.ApprovalScope) *events.Envelope {
	t.Helper()
	d := events.ApprovalDecided{Decision: outcome, Approver: events.Actor{Type: events.ActorHuman, ID: "bob"},
		DecidedAt: events.At(time.Now())}
	switch {
	case outcome == events.ApprovalApproved && scope == events.ScopeSession:
		d.ReasonCode, d.Scope = events.ReasonApprovedForSession, scope
	case outcome == events.ApprovalApproved:
		d.ReasonCode, d.Scope = events.ReasonApproved, events.ScopeOnce
	case outcome == events.ApprovalExpired:
		d.ReasonCode = events.ReasonApprovalExpired
	default:
		d.ReasonCode = events.ReasonApprovalDenied
	}
	env, err := events.New(d, events.WithEventID(ids.Next().String()), events.WithApproval(ref.ApprovalID),
		events.WithSession(ref.SessionID, "approvals-test"), events.WithTenant(ref.Tenant),
		events.WithParent(ref.RequestEventID), events.WithActor(events.ActorHuman, "bob"))
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Sign(env, ref); err != nil {
		t.Fatal(err)
	}
	return env
}

// asyncCall runs a call in the background.
func asyncCall(s *Session, c Call) <-chan callOutcome {
	ch := make(chan callOutcome, 1)
	go func() {
		res, err := s.Call(context.Background(), c)
		ch <- callOutcome{res, err}
	}()
	return ch
}

type callOutcome struct {
	res *Result
	err error
}

func waitOutcome(t *testing.T, ch <-chan callOutcome) callOutcome {
	t.Helper()
	select {
	case o := <-ch:
		return o
	case <-time.After(10 * time.Second):
		t.Fatal("call did not finish")
	}
	return callOutcome{}
}

func mustWrite(t testing.TB, path, body string) {
	t.Helper()
	if i := strings.LastIndex(path, "/"); i > 0 {
		if err := os.MkdirAll(path[:i], 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(path, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
}

var _ = errors.Is
