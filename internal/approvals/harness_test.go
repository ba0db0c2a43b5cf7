package approvals

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/agentaudit/agentaudit/internal/approvals/signing"
	"github.com/agentaudit/agentaudit/internal/eventlog"
	"github.com/agentaudit/agentaudit/internal/events"
	"github.com/agentaudit/agentaudit/internal/testenv"
)

// Tokens of the test approvers. The log tests assert none of them (nor
// their hashes) ever reaches a log line.
var testTokens = map[string]string{
	"alice":    "tok-alice-7c1f0a9d2e",
	"bob":      "tok-bob-3b8e44d1aa",
	"carol":    "tok-carol-91d0c2ff3e",
	"claude-1": "tok-claude-0f4e3a7b19",
	"dave":     "tok-dave-55aa0e1c77",
}

// testApprovers: alice and bob are on call; carol is release (only release
// may answer deploy-* rules); claude-1 is also an agent that requests, so
// it tests self-approval; dave's group may answer only low-risk egress.
func testApprovers(t testing.TB) *Config {
	t.Helper()
	h := func(who string) string { return HashToken(testTokens[who]) }
	y := fmt.Sprintf(`
approvers:
  - {id: alice, name: Alice Example, groups: [oncall], token_sha256: %s}
  - {id: bob, name: Bob Example, groups: [oncall], token_sha256: %s}
  - {id: carol, name: Carol Example, groups: [release], token_sha256: %s}
  - {id: claude-1, groups: [oncall], token_sha256: %s}
  - {id: dave, groups: [netops], token_sha256: %s}
groups:
  - name: oncall
    may_answer: [{kinds: [tool_call, egress, session_hold]}]
    may_triage: [{rule_ids: ["*"]}]
  - name: release
    may_answer: [{rule_ids: ["deploy-*"]}]
  - name: netops
    may_answer: [{kinds: [egress], max_risk: low}]
    may_suppress: [{rule_ids: ["egress-*"]}]
restricted:
  - match: {rule_ids: ["deploy-*"]}
    groups: [release]
two_person:
  - rule_ids: ["two-*"]
`, h("alice"), h("bob"), h("carol"), h("claude-1"), h("dave"))
	cfg, err := ParseConfig([]byte(y))
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

// atomicClock is a settable clock safe for the service's goroutines.
type atomicClock struct{ ns atomic.Int64 }

func newAtomicClock(t time.Time) *atomicClock {
	c := &atomicClock{}
	c.ns.Store(t.UnixNano())
	return c
}
func (c *atomicClock) now() time.Time      { return time.Unix(0, c.ns.Load()).UTC() }
func (c *atomicClock) add(d time.Duration) { c.ns.Add(int64(d)) }

// logBuffer collects the service's log lines (and echoes them to t).
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}

// harness is a running service on some Kafka, a runner-like producer that
// raises requests, and an HTTP server for the API.
type harness struct {
	t       testing.TB
	brokers []string
	topics  eventlog.Topics
	svc     *Service
	srv     *httptest.Server
	runner  *eventlog.Producer
	ids     *events.IDGen
	signer  signing.Signer
	keys    *signing.KeySet
	clock   *atomicClock   // nil: real time
	cluster *kfake.Cluster // nil on real Kafka
	svcProd *eventlog.Producer
	logs    *logBuffer
	cancel  context.CancelFunc
	done    chan error
}

type harnessConfig struct {
	brokers []string        // nil: a kfake cluster
	topics  eventlog.Topics // zero: DefaultTopics
	clock   *atomicClock
	auth    []AuthOption
	svc     []ServiceOption
	signer  *signing.Signer
	node    int64
	spool   string        // the service producer's spool; "" for none
	ack     time.Duration // the service producer's ack time-out (default 15 s)
}

var nodeSeq atomic.Int64

func newHarness(t testing.TB, hc harnessConfig) *harness {
	t.Helper()
	if hc.topics == (eventlog.Topics{}) {
		hc.topics = eventlog.DefaultTopics
	}
	var cluster *kfake.Cluster
	if hc.brokers == nil {
		c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(3, hc.topics.Events, hc.topics.Approvals, hc.topics.DLQ))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(c.Close)
		hc.brokers = c.ListenAddrs()
		cluster = c
	}
	h := &harness{t: t, brokers: hc.brokers, topics: hc.topics, clock: hc.clock, cluster: cluster, logs: &logBuffer{}}
	now := time.Now
	if hc.clock != nil {
		now = hc.clock.now
	}
	if hc.signer != nil {
		h.signer = *hc.signer
	} else {
		h.signer, _ = mustKey(t, "svc-k1")
	}
	h.keys = mustKeySet(t, []signing.PublicKey{h.signer.Public()}, now())
	ctx := context.Background()
	// Node ids: the runner and each service get their own, so event ids
	// never collide (the fold de-duplicates by event id).
	base := 100 + 2*nodeSeq.Add(1)
	var err error
	h.ids, err = events.NewIDGen(base)
	if err != nil {
		t.Fatal(err)
	}
	// Generous ack bounds: the machine is shared, and setup must not
	// fail for a slow moment of the broker.
	h.runner, err = eventlog.NewProducer(ctx, hc.brokers, "runner-test", eventlog.WithTopics(hc.topics), eventlog.WithAckTimeout(15*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.runner.Close(context.Background()) })
	h.start(hc, base+1, now)
	return h
}

// start runs a service (a fresh one, rebuilding from the topic) and its
// HTTP server.
func (h *harness) start(hc harnessConfig, node int64, now func() time.Time) {
	t := h.t
	t.Helper()
	ctx := context.Background()
	log := slog.New(slog.NewJSONHandler(io.MultiWriter(h.logs, testenv.Writer{T: t}), &slog.HandlerOptions{Level: slog.LevelDebug}))
	auth, err := NewAuthenticator(testApprovers(t), append([]AuthOption{WithAuthClock(now),
		WithLimiter(NewLimiter(1000, time.Millisecond, 100, now))}, hc.auth...)...)
	if err != nil {
		t.Fatal(err)
	}
	ids, err := events.NewIDGen(node)
	if err != nil {
		t.Fatal(err)
	}
	emitID := NewEmitterID("approvals-test", ids)
	ack := 15 * time.Second
	if hc.ack > 0 {
		ack = hc.ack
	}
	popts := []eventlog.ProducerOption{eventlog.WithTopics(h.topics), eventlog.WithAckTimeout(ack)}
	if hc.spool != "" {
		popts = append(popts, eventlog.WithSpool(hc.spool, 1<<20))
	}
	prod, err := eventlog.NewProducer(ctx, h.brokers, emitID, popts...)
	if err != nil {
		t.Fatal(err)
	}
	h.svcProd = prod
	opts := append([]ServiceOption{WithServiceLogger(log), WithServiceClock(now), WithServiceTopics(h.topics),
		WithExpiry(true, 20*time.Millisecond)}, hc.svc...)
	svc, err := NewService(h.brokers, prod, h.signer, auth, ids, emitID, opts...)
	if err != nil {
		t.Fatal(err)
	}
	rctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- svc.Run(rctx) }()
	srv := httptest.NewServer(svc.Handler())
	h.svc, h.srv, h.cancel, h.done = svc, srv, cancel, done
	t.Cleanup(func() { h.stop(); prod.Close(context.Background()) })
	select {
	case <-svc.Ready():
	case err := <-done:
		t.Fatalf("service stopped before it was ready: %v", err)
	case <-time.After(30 * time.Second):
		t.Fatal("service not ready after 30s")
	}
}

func (h *harness) stop() {
	if h.cancel == nil {
		return
	}
	h.srv.Close()
	h.cancel()
	if err := <-h.done; err != nil {
		h.t.Errorf("service Run: %v", err)
	}
	h.cancel = nil
}

func (h *harness) now() time.Time {
	if h.clock != nil {
		return h.clock.now()
	}
	return time.Now()
}

// raise emits, like a runner, a tool_call.requested with its full
// arguments and the approval.requested about it, and returns the request
// event (its event id is the approval id). mutate adjusts the payload.
func (h *harness) raise(session string, mutate ...func(*events.ApprovalRequested)) *events.Envelope {
	h.t.Helper()
	ctx := context.Background()
	now := h.now()
	call := "call-" + h.ids.Next().String()
	sum := sha256.Sum256([]byte(call))
	tc, err := events.New(events.ToolCallRequested{ToolName: "shell",
		Arguments:       events.ToolArguments{Argv: []string{"kubectl", "apply", "-f", "deploy.yaml"}, Cwd: "/workspace"},
		ArgumentsSHA256: hex.EncodeToString(sum[:])},
		events.WithIDs(h.ids), events.WithSession(session, "runner-test"), events.WithTenant(tenant),
		events.WithTime(now), events.WithActor(events.ActorAgent, requesterA), events.WithToolCall(call))
	if err != nil {
		h.t.Fatal(err)
	}
	if err := h.runner.Emit(ctx, tc); err != nil {
		h.t.Fatal(err)
	}
	p := events.ApprovalRequested{
		Kind: events.ApprovalKindToolCall, Summary: "kubectl apply -f deploy.yaml",
		Reason: "cluster changes need an on-call approver", ReasonCode: events.ReasonNeedsApproval,
		RuleID: "kubectl-apply", Risk: events.RiskHigh,
		Requester: events.Actor{Type: events.ActorAgent, ID: requesterA},
		Scopes:    []events.ApprovalScope{events.ScopeOnce, events.ScopeSession},
		ExpiresAt: events.At(now.Add(15 * time.Minute)), RequestEventID: tc.EventID,
	}
	for _, m := range mutate {
		m(&p)
	}
	id := h.ids.Next().String()
	env, err := events.New(p, events.WithEventID(id), events.WithApproval(id), events.WithSession(session, "runner-test"),
		events.WithTenant(tenant), events.WithTime(now), events.WithActor(events.ActorAgent, p.Requester.ID),
		events.WithToolCall(call), events.WithParent(tc.EventID))
	if err != nil {
		h.t.Fatal(err)
	}
	if err := h.runner.Emit(ctx, env); err != nil {
		h.t.Fatal(err)
	}
	return env
}

// waitFor polls cond until it holds or the bound passes.
func waitFor(t testing.TB, bound time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(bound)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %s", what, bound)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// raised waits until the service has the request.
func (h *harness) raised(session string, mutate ...func(*events.ApprovalRequested)) string {
	h.t.Helper()
	env := h.raise(session, mutate...)
	waitFor(h.t, 10*time.Second, "request "+env.ApprovalID+" folded", func() bool {
		_, ok := h.svc.State().Get(env.ApprovalID)
		return ok
	})
	return env.ApprovalID
}

// call makes an API request as who ("" for no token; a token itself when
// who is not a test approver) and returns the status and body.
func (h *harness) call(method, path, who string, body any, hdr map[string]string) (int, []byte) {
	h.t.Helper()
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			h.t.Fatal(err)
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, h.srv.URL+path, rd)
	if err != nil {
		h.t.Fatal(err)
	}
	if who != "" {
		tok, ok := testTokens[who]
		if !ok {
			tok = who
		}
		req.Header.Set("Authorization", "Bearer "+tok)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		h.t.Fatal(err)
	}
	defer resp.Body.Close()
	out, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, out
}

func errCode(b []byte) string {
	var e ErrorView
	_ = json.Unmarshal(b, &e)
	return e.Error.Code
}

// sseReader reads server-sent events from the API's event stream.
type sseReader struct {
	resp   *http.Response
	frames chan map[string]string
}

func (h *harness) subscribe(who string) *sseReader {
	h.t.Helper()
	req, _ := http.NewRequest(http.MethodGet, h.srv.URL+"/api/v1/events", nil)
	req.Header.Set("Authorization", "Bearer "+testTokens[who])
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		h.t.Fatal(err)
	}
	if resp.StatusCode != http.StatusOK {
		h.t.Fatalf("event stream: %s", resp.Status)
	}
	r := &sseReader{resp: resp, frames: make(chan map[string]string, 1024)}
	go func() {
		defer close(r.frames)
		sc := bufio.NewScanner(resp.Body)
		cur := map[string]string{}
		for sc.Scan() {
			line := sc.Text()
			if line == "" {
				if len(cur) > 0 {
					r.frames <- cur
				}
				cur = map[string]string{}
				continue
			}
			if strings.HasPrefix(line, ":") {
				continue
			}
			k, v, _ := strings.Cut(line, ":")
			cur[k] += strings.TrimPrefix(v, " ")
		}
	}()
	h.t.Cleanup(func() { resp.Body.Close() })
	return r
}
