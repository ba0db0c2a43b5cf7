package runner

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/agentaudit/agentaudit/internal/approvals/signing"
	"github.com/agentaudit/agentaudit/internal/eventlog"
	"github.com/agentaudit/agentaudit/internal/eventlog/eventlogtest"
	"github.com/agentaudit/agentaudit/internal/events"
	"github.com/agentaudit/agentaudit/internal/sandbox"
	"github.com/agentaudit/agentaudit/internal/testenv"
	"github.com/agentaudit/agentaudit/internal/testenv/faultreport"
)

// These tests run the gateway against the real Kafka and Podman that
// testenv/up starts, on topics private to each test.

// itWorkspace is a workspace the Podman user owns (t.TempDir is under a
// 0700 root directory the sandbox cannot enter).
func itWorkspace(t *testing.T) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "agentaudit-runner-ws-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	uid, _ := strconv.Atoi(testenv.Get(t, "PODMAN_UID"))
	if err := sandbox.PrepareWorkspace(dir, uid, uid); err != nil {
		t.Fatal(err)
	}
	return dir
}

// itEnv is a Service on real services plus a test approver and detector.
type itEnv struct {
	svc      *Service
	cfg      Config
	topics   eventlog.Topics
	brokers  []string
	signer   signing.Signer
	approver *eventlog.Producer // writes approval.decided, session.held, session.released
	ids      *events.IDGen
	requests *requestReader
}

func newITEnv(t *testing.T, approvalTimeout time.Duration) *itEnv {
	t.Helper()
	return newITEnvWith(t, approvalTimeout, nil)
}

// newITEnvWith is newITEnv with edit applied to the configuration first.
func newITEnvWith(t *testing.T, approvalTimeout time.Duration, edit func(*Config)) *itEnv {
	t.Helper()
	brokers := testenv.Kafka(t)
	sock := testenv.Podman(t)
	tp := eventlogtest.Topics(t, brokers)
	signer, pub, err := signing.GenerateKey("approvals-it-1")
	if err != nil {
		t.Fatal(err)
	}
	keyFile := filepath.Join(t.TempDir(), "keys.json")
	data, err := signing.MarshalKeySet([]signing.PublicKey{pub})
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, data, 0o644); err != nil {
		t.Fatal(err)
	}
	cfg := Config{
		KafkaBrokers: brokers, PodmanSocket: sock, SandboxImage: testenv.Get(t, "SANDBOX_IMAGE"),
		RunnerID: fmt.Sprintf("runner-it-%d", time.Now().UnixNano()), Tenant: "acme", Operator: "alice",
		ApprovalKeys: keyFile, ApprovalTimeout: approvalTimeout, SpoolDir: t.TempDir(), AckTimeout: 2 * time.Second,
		TopicEvents: tp.Events, TopicApprovals: tp.Approvals, TopicDLQ: tp.DLQ,
		Supervisor: testenv.SupervisorBinary(t), SocketRoot: testenv.SocketRoot(t), PodmanUID: testenv.Get(t, "PODMAN_UID"),
		Logger: testLogger(t),
	}
	if edit != nil {
		edit(&cfg)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	svc, err := Open(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { svc.Close(context.Background()) })
	ap, err := eventlog.NewProducer(ctx, brokers, "approvals-it", eventlog.WithTopics(tp))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ap.Close(context.Background()) })
	ids, _ := events.NewIDGen(nodeOf("approvals-it"))
	e := &itEnv{svc: svc, cfg: cfg, topics: tp, brokers: brokers, signer: signer, approver: ap, ids: ids}
	e.requests = readRequests(t, brokers, tp.Approvals)
	return e
}

func (e *itEnv) open(t *testing.T, ws string) *Session {
	t.Helper()
	s, err := e.svc.OpenSession(context.Background(), SessionOptions{Workspace: ws, Mode: "mcp",
		Client: &events.ClientInfo{Name: "it-agent", Version: "1"}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close(context.Background(), events.EndCompleted) })
	return s
}

// answer signs a decision for the request with signer and writes it to
// audit.approvals, as the approvals service would.
func (e *itEnv) answer(t *testing.T, signer signing.Signer, req *events.Envelope, outcome events.ApprovalOutcome, scope events.ApprovalScope) *events.Envelope {
	t.Helper()
	ref, err := signing.RefOf(req)
	if err != nil {
		t.Fatal(err)
	}
	d := signedDecision(t, signer, e.ids, ref, outcome, scope)
	e.publish(t, d)
	return d
}

func (e *itEnv) publish(t *testing.T, env *events.Envelope) {
	t.Helper()
	// A copy: the producer stamps the chain fields, and a replay must be
	// stamped afresh.
	cp := *env
	cp.Seq, cp.PrevHash, cp.Hash, cp.RunnerID = 0, "", "", ""
	if err := e.approver.Emit(context.Background(), &cp); err != nil {
		t.Fatal(err)
	}
}

// requestReader collects approval.requested events from the topic.
type requestReader struct {
	mu   sync.Mutex
	seen []*events.Envelope
	cl   *kgo.Client
}

func readRequests(t *testing.T, brokers []string, topic string) *requestReader {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.ConsumeTopics(topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.FetchMaxWait(100*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	r := &requestReader{cl: cl}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			f := cl.PollFetches(ctx)
			if ctx.Err() != nil || f.IsClientClosed() {
				return
			}
			f.EachRecord(func(rec *kgo.Record) {
				env, err := events.Decode(rec.Value)
				if err == nil && env.EventType == events.TypeApprovalRequested {
					r.mu.Lock()
					r.seen = append(r.seen, env)
					r.mu.Unlock()
				}
			})
		}
	}()
	t.Cleanup(func() { cancel(); <-done; cl.Close() })
	return r
}

// next waits for the n-th (from 0) approval.requested of session.
func (r *requestReader) next(t *testing.T, session string, n int) *events.Envelope {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		r.mu.Lock()
		i := 0
		for _, e := range r.seen {
			if e.SessionID == session {
				if i == n {
					r.mu.Unlock()
					return e
				}
				i++
			}
		}
		r.mu.Unlock()
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("no approval.requested #%d for session %s on the topic", n+1, session)
	return nil
}

// sessionEvents reads every event of session from the events topic.
func sessionEvents(t *testing.T, brokers []string, topic, session string, want int) []*events.Envelope {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.ConsumeTopics(topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.FetchMaxWait(200*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	var out []*events.Envelope
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	for len(out) < want && ctx.Err() == nil {
		f := cl.PollFetches(ctx)
		f.EachRecord(func(rec *kgo.Record) {
			env, err := events.Decode(rec.Value)
			if err != nil {
				t.Errorf("invalid event on %s: %v", topic, err)
				return
			}
			if env.SessionID == session {
				out = append(out, env)
			}
		})
	}
	return out
}

func exists(ws, name string) bool {
	_, err := os.Stat(filepath.Join(ws, name))
	return err == nil
}

func shell(cmd string) Call {
	return Call{Tool: ToolShell, Command: cmd, Raw: []byte(fmt.Sprintf(`{"command":%q}`, cmd))}
}

func TestIntegrationDecisionPaths(t *testing.T) {
	e := newITEnv(t, 4*time.Second)
	ctx := context.Background()

	t.Run("allow runs and is recorded", func(t *testing.T) {
		ws := itWorkspace(t)
		s := e.open(t, ws)
		res, err := s.Call(ctx, shell("touch allowed.marker && echo ok"))
		if err != nil {
			t.Fatal(err)
		}
		if res.Exec.ExitCode != 0 || string(res.Exec.Stdout.Data) != "ok\n" || !exists(ws, "allowed.marker") {
			t.Fatalf("allowed call: exit %d stdout %q marker %v", res.Exec.ExitCode, res.Exec.Stdout.Data, exists(ws, "allowed.marker"))
		}
		id := s.ID()
		if err := s.Close(ctx, events.EndCompleted); err != nil {
			t.Fatal(err)
		}
		evs := sessionEvents(t, e.brokers, e.topics.Events, id, 7)
		var types []string
		var execs [][]string
		for _, ev := range evs {
			types = append(types, ev.EventType)
			if ev.EventType == events.TypeProcessExec {
				p, err := ev.DecodePayload()
				if err != nil {
					t.Fatal(err)
				}
				execs = append(execs, p.(*events.ProcessExec).Argv)
			}
		}
		// The supervisor saw the call's real programs: bash, then touch
		// (echo is a builtin).
		want := []string{events.TypeSessionStarted, events.TypeToolCallRequested, events.TypePolicyDecision,
			events.TypeProcessExec, events.TypeProcessExec, events.TypeToolCallCompleted, events.TypeSessionEnded}
		if diff := cmp.Diff(want, types); diff != "" {
			t.Errorf("events on %s (-want +got):\n%s", e.topics.Events, diff)
		}
		wantExecs := [][]string{{"bash", "-c", "touch allowed.marker && echo ok"}, {"touch", "allowed.marker"}}
		if diff := cmp.Diff(wantExecs, execs); diff != "" {
			t.Errorf("process.exec argv (-want +got):\n%s", diff)
		}
		if err := events.VerifyChain(evs); err != nil {
			t.Errorf("chain: %v", err)
		}
	})

	t.Run("deny runs nothing", func(t *testing.T) {
		ws := itWorkspace(t)
		s := e.open(t, ws)
		_, err := s.Call(ctx, shell("touch denied.marker && rm -rf /"))
		if ReasonOf(err) != events.ReasonDeniedByRule {
			t.Fatalf("err = %v, want denied_by_rule", err)
		}
		if exists(ws, "denied.marker") {
			t.Fatal("denied command ran: marker exists")
		}
	})

	askCases := []struct {
		name   string
		answer func(t *testing.T, req *events.Envelope)
		want   events.ReasonCode // "" = ran
		code   signing.Code
	}{
		{"approved runs", func(t *testing.T, req *events.Envelope) {
			e.answer(t, e.signer, req, events.ApprovalApproved, events.ScopeOnce)
		}, "", ""},
		{"denied does not run", func(t *testing.T, req *events.Envelope) {
			e.answer(t, e.signer, req, events.ApprovalDenied, "")
		}, events.ReasonApprovalDenied, ""},
		{"unanswered expires", func(*testing.T, *events.Envelope) {}, events.ReasonApprovalExpired, ""},
		{"forged decision is refused", func(t *testing.T, req *events.Envelope) {
			forger, _, _ := signing.GenerateKey("approvals-it-1")
			e.answer(t, forger, req, events.ApprovalApproved, events.ScopeOnce)
		}, events.ReasonApprovalExpired, signing.CodeBadSignature},
		{"decision for another approval id is refused", func(t *testing.T, req *events.Envelope) {
			ref, _ := signing.RefOf(req)
			ref.ApprovalID, ref.RequestEventID = e.ids.Next().String(), e.ids.Next().String()
			d := signedDecision(t, e.signer, e.ids, ref, events.ApprovalApproved, events.ScopeOnce)
			d.ApprovalID = req.ApprovalID
			e.publish(t, d)
		}, events.ReasonApprovalExpired, signing.CodeRequestMismatch},
	}
	for _, tc := range askCases {
		t.Run("ask: "+tc.name, func(t *testing.T) {
			ws := itWorkspace(t)
			s := e.open(t, ws)
			before := e.svc.Stats().Rejected(tc.code)
			ch := asyncCall(s, shell("touch asked.marker && git push origin main"))
			req := e.requests.next(t, s.ID(), 0)
			p, _ := req.DecodePayload()
			if ar := p.(*events.ApprovalRequested); ar.RuleID != "git-push" || ar.ReasonCode != events.ReasonNeedsApproval || req.ApprovalID != req.EventID {
				t.Errorf("approval.requested: %+v approval_id %s", ar, req.ApprovalID)
			}
			tc.answer(t, req)
			o := waitOutcome(t, ch)
			if got := ReasonOf(o.err); got != tc.want {
				t.Fatalf("outcome %v, want %q", o.err, tc.want)
			}
			if ran := exists(ws, "asked.marker"); ran != (tc.want == "") {
				t.Errorf("marker exists = %v, want %v", ran, tc.want == "")
			}
			if tc.code != "" && e.svc.Stats().Rejected(tc.code) != before+1 {
				t.Errorf("decisions rejected as %s: %d, want %d", tc.code, e.svc.Stats().Rejected(tc.code), before+1)
			}
		})
	}

	t.Run("ask: replayed old decision is refused", func(t *testing.T) {
		ws := itWorkspace(t)
		s := e.open(t, ws)
		ch := asyncCall(s, shell("git push"))
		old := e.answer(t, e.signer, e.requests.next(t, s.ID(), 0), events.ApprovalApproved, events.ScopeOnce)
		if o := waitOutcome(t, ch); o.err != nil {
			t.Fatal(o.err)
		}
		before := e.svc.Stats().Rejected(signing.CodeReplay)
		ch = asyncCall(s, shell("touch replay.marker && git push"))
		e.requests.next(t, s.ID(), 1)
		e.publish(t, old)
		if o := waitOutcome(t, ch); ReasonOf(o.err) != events.ReasonApprovalExpired {
			t.Fatalf("call after a replay: %v, want approval_expired", o.err)
		}
		if exists(ws, "replay.marker") {
			t.Error("replayed approval ran the call")
		}
		if got := e.svc.Stats().Rejected(signing.CodeReplay); got != before+1 {
			t.Errorf("replays rejected %d, want %d", got, before+1)
		}
	})

	t.Run("session-scoped approval is reused", func(t *testing.T) {
		ws := itWorkspace(t)
		s := e.open(t, ws)
		ch := asyncCall(s, shell("touch one.marker && git push"))
		e.answer(t, e.signer, e.requests.next(t, s.ID(), 0), events.ApprovalApproved, events.ScopeSession)
		if o := waitOutcome(t, ch); o.err != nil {
			t.Fatal(o.err)
		}
		res, err := s.Call(ctx, shell("touch two.marker && git push --tags"))
		if err != nil || res.Reason != events.ReasonApprovedForSession || !exists(ws, "two.marker") {
			t.Fatalf("second call: %v %+v", err, res)
		}
	})

	t.Run("hold stops calls until release", func(t *testing.T) {
		ws := itWorkspace(t)
		s := e.open(t, ws)
		held := holdEnv(t, e, s, true)
		e.publish(t, held)
		waitHeld(t, s, true)
		if _, err := s.Call(ctx, shell("touch held.marker")); ReasonOf(err) != events.ReasonSessionHeld {
			t.Fatalf("held call: %v", err)
		}
		if exists(ws, "held.marker") {
			t.Fatal("held call ran")
		}
		e.publish(t, holdEnv(t, e, s, false))
		waitHeld(t, s, false)
		if _, err := s.Call(ctx, shell("touch released.marker")); err != nil || !exists(ws, "released.marker") {
			t.Fatalf("released call: %v", err)
		}
	})

	t.Run("a hold freezes a running call", func(t *testing.T) {
		ws := itWorkspace(t)
		s := e.open(t, ws)
		done := make(chan error, 1)
		go func() {
			_, err := s.Call(ctx, Call{Tool: ToolShell, Command: "for i in $(seq 60); do echo $i >> count; sleep 0.05; done",
				Timeout: time.Minute, Raw: []byte(`{"command":"count"}`)})
			done <- err
		}()
		time.Sleep(500 * time.Millisecond)
		e.publish(t, holdEnv(t, e, s, true))
		waitHeld(t, s, true)
		time.Sleep(300 * time.Millisecond) // the freeze reaches every process
		before, _ := os.ReadFile(filepath.Join(ws, "count"))
		time.Sleep(time.Second)
		after, _ := os.ReadFile(filepath.Join(ws, "count"))
		if len(before) == 0 || string(before) != string(after) {
			t.Errorf("the held session kept working: %d → %d bytes of output", len(before), len(after))
		}
		e.publish(t, holdEnv(t, e, s, false))
		waitHeld(t, s, false)
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("the call failed after release: %v", err)
			}
		case <-time.After(30 * time.Second):
			t.Fatal("the call did not finish after the release")
		}
		if b, _ := os.ReadFile(filepath.Join(ws, "count")); !strings.HasSuffix(string(b), "\n60\n") {
			t.Errorf("after the release the loop did not run to its end: %q", b)
		}
	})

	t.Run("path escapes", func(t *testing.T) {
		ws := itWorkspace(t)
		s := e.open(t, ws)
		// The agent makes the link itself, inside the sandbox.
		if res, err := s.Call(ctx, shell("ln -s /etc/passwd pw && ln -s ../../../.. up")); err != nil || res.Exec.ExitCode != 0 {
			t.Fatalf("ln: %v %+v", err, res)
		}
		for _, c := range []Call{
			{Tool: ToolReadFile, Path: "../x"},
			{Tool: ToolReadFile, Path: "/etc/passwd"},
			{Tool: ToolReadFile, Path: "pw"},
			{Tool: ToolWriteFile, Path: "pw", Content: []byte("x")},
			{Tool: ToolWriteFile, Path: "up/tmp/escaped.marker", Content: []byte("x")},
			{Tool: ToolShell, Command: "touch escape.marker", Cwd: "/tmp"},
		} {
			if _, err := s.Call(ctx, c); ReasonOf(err) != events.ReasonPathOutsideWorkspace {
				t.Errorf("%s %q: %v, want path_outside_workspace", c.Tool, c.Path+c.Cwd, err)
			}
		}
		if exists(ws, "escape.marker") || exists("/tmp", "escaped.marker") {
			t.Error("an escape ran")
		}
	})
}

func holdEnv(t *testing.T, e *itEnv, s *Session, held bool) *events.Envelope {
	t.Helper()
	var p events.Payload = events.SessionHeld{Reason: "detection rule exfil fired", RuleID: "exfil", By: events.Actor{Type: events.ActorRule, ID: "exfil"}}
	if !held {
		p = events.SessionReleased{Reason: "reviewed", By: events.Actor{Type: events.ActorHuman, ID: "bob"}}
	}
	env, err := events.New(p, events.WithEventID(e.ids.Next().String()), events.WithSession(s.ID(), "approvals-it"),
		events.WithTenant("acme"), events.WithActor(events.ActorRule, "exfil"))
	if err != nil {
		t.Fatal(err)
	}
	return env
}

func waitHeld(t *testing.T, s *Session, want bool) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for s.Held() != want {
		if time.Now().After(deadline) {
			t.Fatalf("session held = %v, want %v", s.Held(), want)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestFaultKafkaDown stops the shared Kafka: with the audit log gone, a
// call is denied as audit_unavailable and nothing runs; once Kafka is back
// the spooled denial reaches the topic.
func TestFaultKafkaDown(t *testing.T) {
	e := newITEnv(t, time.Minute)
	ws := itWorkspace(t)
	s := e.open(t, ws)
	ctx := context.Background()
	if _, err := s.Call(ctx, shell("true")); err != nil {
		t.Fatal(err)
	}
	testenv.Stop(t, "kafka")
	restarted := false
	t.Cleanup(func() {
		if !restarted {
			testenv.Start(t, "kafka")
		}
	})
	for _, c := range []Call{shell("touch fault.marker"), {Tool: ToolWriteFile, Path: "fault2.marker", Content: []byte("x")}} {
		_, err := s.Call(ctx, c)
		if ReasonOf(err) != events.ReasonAuditUnavailable {
			t.Errorf("%s with Kafka down: %v, want audit_unavailable", c.Tool, err)
		}
	}
	if exists(ws, "fault.marker") || exists(ws, "fault2.marker") {
		t.Fatal("a call ran while Kafka was down")
	}
	testenv.Start(t, "kafka")
	restarted = true
	fctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	for e.svc.Producer.Pending() > 0 && fctx.Err() == nil {
		e.svc.Producer.Flush(fctx)
		time.Sleep(200 * time.Millisecond)
	}
	if n := e.svc.Producer.Pending(); n != 0 {
		t.Fatalf("%d events still spooled a minute after Kafka came back", n)
	}
	evs := sessionEvents(t, e.brokers, e.topics.Events, s.ID(), 8)
	var denied int
	for _, ev := range evs {
		if ev.EventType == events.TypePolicyDecision {
			p, _ := ev.DecodePayload()
			if p.(*events.PolicyDecision).ReasonCode == events.ReasonAuditUnavailable {
				denied++
			}
		}
	}
	if denied != 2 {
		t.Errorf("audit_unavailable decisions on the topic: %d, want 2", denied)
	}
	if err := events.VerifyChain(evs); err != nil {
		t.Errorf("chain after the outage: %v", err)
	}
	// Produced: what Kafka acknowledged, directly or from the spool;
	// stored: the session's distinct events on the topic.
	st := e.svc.Producer.Stats()
	seen := map[string]int{}
	var dup int64
	for _, ev := range evs {
		if seen[ev.EventID]++; seen[ev.EventID] > 1 {
			dup++
		}
	}
	produced := st.Acked.Load() + st.Drained.Load()
	faultreport.Record(t, faultreport.Case{
		Name: "runner with Kafka down", Package: "internal/runner",
		Produced: produced, Stored: int64(len(seen)), Lost: max(0, produced-int64(len(seen))), Duplicated: dup,
		Detail: fmt.Sprintf("clean broker stop; %d calls denied audit_unavailable, nothing executed; %d events spooled and delivered after recovery",
			denied, st.Spooled.Load()),
	})
}
