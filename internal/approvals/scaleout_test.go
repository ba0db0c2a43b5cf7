package approvals

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/agentaudit/agentaudit/internal/approvals/signing"
	"github.com/agentaudit/agentaudit/internal/eventlog"
	"github.com/agentaudit/agentaudit/internal/events"
	"github.com/agentaudit/agentaudit/internal/testenv"
)

// instance is a second `approve serve` on a harness's topics: its own
// producer, chain, fold and HTTP server, signing with the same key.
type instance struct {
	svc    *Service
	srv    *httptest.Server
	prod   *eventlog.Producer
	cancel context.CancelFunc
	done   chan error
	once   sync.Once
}

// slowEmitter holds an approver's decision back before writing it, as a
// slow network or a paused process would, so that it reaches the log
// after an expiry written meanwhile by the other instance.
type slowEmitter struct {
	Emitter
	delay time.Duration
}

func (e slowEmitter) Emit(ctx context.Context, env *events.Envelope) error {
	if env.EventType == events.TypeApprovalDecided && env.Actor.Type == events.ActorHuman {
		time.Sleep(e.delay)
	}
	return e.Emitter.Emit(ctx, env)
}

func startInstance(t *testing.T, h *harness, opts ...ServiceOption) *instance {
	return startInstanceWith(t, h, 0, opts...)
}

// startInstanceWith is startInstance with decisions by approvers held
// back by delay before they are written.
func startInstanceWith(t *testing.T, h *harness, delay time.Duration, opts ...ServiceOption) *instance {
	t.Helper()
	log := slog.New(slog.NewJSONHandler(testenv.Writer{T: t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
	auth, err := NewAuthenticator(testApprovers(t), WithLimiter(NewLimiter(1000, time.Millisecond, 100, time.Now)))
	if err != nil {
		t.Fatal(err)
	}
	ids, err := events.NewIDGen(100 + 2*nodeSeq.Add(1))
	if err != nil {
		t.Fatal(err)
	}
	emitID := NewEmitterID("approvals-test-b", ids)
	prod, err := eventlog.NewProducer(context.Background(), h.brokers, emitID,
		eventlog.WithTopics(h.topics), eventlog.WithAckTimeout(15*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	var em Emitter = prod
	if delay > 0 {
		em = slowEmitter{Emitter: prod, delay: delay}
	}
	svc, err := NewService(h.brokers, em, h.signer, auth, ids, emitID, append([]ServiceOption{
		WithServiceLogger(log), WithServiceTopics(h.topics), WithExpiry(true, 20*time.Millisecond)}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	in := &instance{svc: svc, srv: httptest.NewServer(svc.Handler()), prod: prod, cancel: cancel, done: make(chan error, 1)}
	go func() { in.done <- svc.Run(ctx) }()
	t.Cleanup(func() {
		in.once.Do(func() {
			in.srv.Close()
			cancel()
			<-in.done
			prod.Close(context.Background())
		})
	})
	select {
	case <-svc.Ready():
	case err := <-in.done:
		t.Fatalf("instance stopped before it was ready: %v", err)
	case <-time.After(30 * time.Second):
		t.Fatal("instance not ready after 30s")
	}
	return in
}

// kill stops the instance the way a crash does as far as anyone else can
// tell: its connections drop, its fold and expiry stop, and its producer
// closes without draining what it had not sent.
func (in *instance) kill() {
	in.once.Do(func() {
		in.srv.CloseClientConnections()
		in.cancel()
		<-in.done
		dead, cancel := context.WithCancel(context.Background())
		cancel()
		in.prod.Close(dead)
		in.srv.Close()
	})
}

// answer is what an approver's click got back.
type answer struct {
	status int
	code   string
	msg    string
	out    DecisionOutput
	err    error // transport error: the instance died mid-request
}

// decideOn posts a decision to base as who, safe to call from any
// goroutine.
func decideOn(base, id, who string, body map[string]any) answer {
	b, _ := json.Marshal(body)
	req, err := http.NewRequest(http.MethodPost, base+"/api/v1/requests/"+id+"/decision", bytes.NewReader(b))
	if err != nil {
		return answer{err: err}
	}
	req.Header.Set("Authorization", "Bearer "+testTokens[who])
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return answer{err: err}
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	a := answer{status: resp.StatusCode}
	if resp.StatusCode == http.StatusOK {
		a.err = json.Unmarshal(raw, &a.out)
		return a
	}
	var e ErrorView
	_ = json.Unmarshal(raw, &e)
	a.code, a.msg = e.Error.Code, e.Error.Message
	return a
}

// decisionsInLog reads the approvals topic up to its current end and
// returns every approval.decided by approval id, in partition order.
func decisionsInLog(t *testing.T, h *harness) map[string][]*events.Envelope {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cl, err := kgo.NewClient(kgo.SeedBrokers(h.brokers...), kgo.ConsumeTopics(h.topics.Approvals),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.FetchMaxWait(200*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ends, err := kadm.NewClient(cl).ListEndOffsets(ctx, h.topics.Approvals)
	if err != nil {
		t.Fatal(err)
	}
	left := map[int32]int64{}
	ends.Each(func(o kadm.ListedOffset) {
		if o.Offset > 0 {
			left[o.Partition] = o.Offset
		}
	})
	out := map[string][]*events.Envelope{}
	for len(left) > 0 {
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatalf("reading the approvals topic: %v (partitions left %v)", ctx.Err(), left)
		}
		fs.EachRecord(func(r *kgo.Record) {
			if end, ok := left[r.Partition]; ok && r.Offset+1 >= end {
				delete(left, r.Partition)
			}
			env, err := events.Decode(r.Value)
			if err == nil && env.EventType == events.TypeApprovalDecided {
				out[env.ApprovalID] = append(out[env.ApprovalID], env)
			}
		})
	}
	return out
}

// runnerPick is what a runner acts on among a request's decisions in log
// order: the first that verifies with the service's keys (partial
// approvals excluded). With guard set it also claims it, as a runner
// does, so every later one must come back as a replay.
func runnerPick(t *testing.T, h *harness, r Request, log []*events.Envelope, guard *signing.ReplayGuard) string {
	t.Helper()
	picked := ""
	for _, env := range log {
		if guard != nil {
			_, err := guard.Accept(h.keys, env, r.Ref())
			switch {
			case err == nil && picked == "":
				picked = env.EventID
			case err == nil:
				t.Errorf("%s: the runner's guard accepted a second decision %s after %s", r.ID, env.EventID, picked)
			case picked != "" && signing.CodeOf(err) != signing.CodeReplay:
				t.Errorf("%s: later decision %s refused with %s, want replay", r.ID, env.EventID, signing.CodeOf(err))
			}
			continue
		}
		if _, err := h.keys.Verified(env, r.Ref()); err == nil {
			return env.EventID
		}
	}
	return picked
}

// converged waits until both folds hold the same requests.
func converged(t *testing.T, a, b *State, want int) {
	t.Helper()
	byID := func(rs []Request) []Request {
		slices.SortFunc(rs, func(x, y Request) int { return strings.Compare(x.ID, y.ID) })
		return rs
	}
	waitFor(t, 20*time.Second, "both folds agree", func() bool {
		ra, rb := a.Requests(), b.Requests()
		return len(ra) == want && cmp.Equal(byID(ra), byID(rb))
	})
	if diff := cmp.Diff(byID(a.Requests()), byID(b.Requests())); diff != "" {
		t.Fatalf("folds differ (-A +B):\n%s", diff)
	}
}

// TestTwoInstancesDecideEachRequestOnce: 50 requests, each answered at
// the same moment on instance A and on instance B (by two approvers, or
// by one approver on both): exactly one click per request is answered
// 200, the other 409 already_decided naming the winner; both folds, and a
// runner reading the log, take the same one, the first in the partition.
func TestTwoInstancesDecideEachRequestOnce(t *testing.T) {
	b := realHarness(t)
	a := startInstance(t, b)
	const n = 50
	ids := make([]string, n)
	for i := range ids {
		ids[i] = b.raise(fmt.Sprintf("sess-scale-%d", i%10)).ApprovalID
	}
	waitFor(t, 20*time.Second, "requests folded on both", func() bool {
		return len(a.svc.State().Pending()) == n && len(b.svc.State().Pending()) == n
	})

	type click struct {
		on, who string
		body    map[string]any
	}
	answers := make([][2]answer, n)
	start := make(chan struct{})
	var wg sync.WaitGroup
	for i, id := range ids {
		// Even requests: alice approves on A while bob denies on B. Odd:
		// alice clicks approve on both, in two tabs.
		clicks := [2]click{{a.srv.URL, "alice", map[string]any{"decision": "approve"}}, {b.srv.URL, "bob", map[string]any{"decision": "deny"}}}
		if i%2 == 1 {
			clicks[1] = click{b.srv.URL, "alice", map[string]any{"decision": "approve", "scope": "session"}}
		}
		for k, c := range clicks {
			wg.Add(1)
			go func() {
				defer wg.Done()
				<-start
				answers[i][k] = decideOn(c.on, id, c.who, c.body)
			}()
		}
	}
	close(start)
	wg.Wait()

	winners := map[string]string{}
	for i, id := range ids {
		var ok, lost []answer
		for _, an := range answers[i] {
			if an.err != nil {
				t.Fatalf("%s: %v", id, an.err)
			}
			if an.status == http.StatusOK {
				ok = append(ok, an)
			} else {
				lost = append(lost, an)
			}
		}
		if len(ok) != 1 || len(lost) != 1 {
			t.Errorf("%s: %d answers 200 and %d refused, want 1 and 1: %+v", id, len(ok), len(lost), answers[i])
			continue
		}
		winners[id] = ok[0].out.EventID
		if l := lost[0]; l.status != http.StatusConflict || l.code != string(CodeAlreadyDecided) || !strings.Contains(l.msg, ok[0].out.EventID) {
			t.Errorf("%s: losing click got %d %s %q, want 409 already_decided naming %s", id, l.status, l.code, l.msg, ok[0].out.EventID)
		}
	}
	converged(t, a.svc.State(), b.svc.State(), n)

	log := decisionsInLog(t, b)
	guard := signing.NewReplayGuard(nil)
	raced := 0
	for _, id := range ids {
		r, _ := b.svc.State().Get(id)
		if r.Final == nil || r.Final.EventID != winners[id] {
			t.Errorf("%s: fold's final decision %+v, want the 200's %s", id, r.Final, winners[id])
			continue
		}
		if len(log[id]) != len(r.History) {
			t.Errorf("%s: %d decisions in the log, %d in the fold's history", id, len(log[id]), len(r.History))
		}
		if len(log[id]) > 0 && log[id][0].EventID != winners[id] {
			t.Errorf("%s: winner %s is not the first decision in the partition (%s)", id, winners[id], log[id][0].EventID)
		}
		for _, at := range r.History {
			if at.EventID != winners[id] && (at.Result != ResultRejected || at.Rejection != CodeAlreadyDecided) {
				t.Errorf("%s: losing decision %s folded as %s %s, want rejected already_decided", id, at.EventID, at.Result, at.Rejection)
			}
		}
		if got := runnerPick(t, b, r, log[id], guard); got != winners[id] {
			t.Errorf("%s: a runner acts on %s, the folds on %s", id, got, winners[id])
		}
		if len(log[id]) > 1 {
			raced++
		}
	}
	t.Logf("%d of %d requests had both clicks written to the log (a real race, settled by partition order); the rest were refused before writing", raced, n)

	// What the losing approver's inbox shows for a raced request: the
	// settled status, and both attempts with what each did.
	for _, id := range ids {
		if len(log[id]) < 2 {
			continue
		}
		var v RequestView
		status, body := b.call(http.MethodGet, "/api/v1/requests/"+id, "bob", nil, nil)
		if status != http.StatusOK || json.Unmarshal(body, &v) != nil {
			t.Fatalf("get %s: %d %s", id, status, body)
		}
		if v.Final == nil || v.Final.EventID != winners[id] || len(v.History) != 2 || v.History[1].Rejection != CodeAlreadyDecided || v.MayAnswer {
			t.Errorf("inbox view of raced %s: final %+v history %+v may_answer %v", id, v.Final, v.History, v.MayAnswer)
		}
		break
	}
}

// TestKilledInstanceLosesNoDecision: instance A is killed right after it
// acknowledged decisions, with more in flight. Every decision it answered
// 200 is in B's fold and passes a runner's verification; every request A
// did not settle is still pending on B and B settles it; a fresh instance
// rebuilds the same state.
func TestKilledInstanceLosesNoDecision(t *testing.T) {
	b := realHarness(t)
	a := startInstance(t, b)
	const n, onA, killAfter = 30, 20, 8
	envs := make([]*events.Envelope, n)
	for i := range envs {
		envs[i] = b.raise(fmt.Sprintf("sess-kill-%d", i%5))
	}
	waitFor(t, 20*time.Second, "requests folded on both", func() bool {
		return len(a.svc.State().Pending()) == n && len(b.svc.State().Pending()) == n
	})

	var mu sync.Mutex
	acked := map[string]string{} // approval id → event id answered 200 by A
	killNow := make(chan struct{})
	var killOnce sync.Once
	var wg sync.WaitGroup
	for _, env := range envs[:onA] {
		wg.Add(1)
		go func() {
			defer wg.Done()
			an := decideOn(a.srv.URL, env.ApprovalID, "alice", map[string]any{"decision": "approve"})
			if an.status != http.StatusOK || an.err != nil {
				return
			}
			mu.Lock()
			acked[env.ApprovalID] = an.out.EventID
			if len(acked) == killAfter {
				killOnce.Do(func() { close(killNow) })
			}
			mu.Unlock()
		}()
	}
	select {
	case <-killNow:
	case <-time.After(30 * time.Second):
		t.Fatal("A did not acknowledge enough decisions")
	}
	a.kill()
	wg.Wait()
	mu.Lock()
	t.Logf("A acknowledged %d of %d decisions before it was killed", len(acked), onA)
	mu.Unlock()

	// B has every acknowledged decision; the rest are decidable on B.
	st := b.svc.State()
	waitFor(t, 10*time.Second, "acknowledged decisions on B", func() bool {
		for id, ev := range acked {
			if r, _ := st.Get(id); r.Final == nil || r.Final.EventID != ev {
				return false
			}
		}
		return true
	})
	settledByB, inFlight := 0, 0
	for _, env := range envs {
		id := env.ApprovalID
		r, ok := st.Get(id)
		if !ok {
			t.Fatalf("%s: not on B", id)
		}
		if _, done := acked[id]; done {
			continue
		}
		if !r.Open() {
			continue
		}
		// Open on B: either A never wrote a decision, or A wrote one
		// whose answer the kill cut off, still on its way to B's fold.
		// Either way B settles it now, once.
		status, body := b.call(http.MethodPost, "/api/v1/requests/"+id+"/decision", "bob", map[string]any{"decision": "deny"}, nil)
		r, _ = st.Get(id)
		switch {
		case status == http.StatusOK:
			settledByB++
		case status == http.StatusConflict && errCode(body) == string(CodeAlreadyDecided) && r.Final != nil && r.Final.Approver.ID == "alice":
			inFlight++
		default:
			t.Errorf("%s open on B after A died: decision %d %s, want 200 (or 409 naming A's unacknowledged decision)", id, status, body)
		}
	}
	t.Logf("B settled %d requests A left open; %d carried A's decision written but not acknowledged before the kill", settledByB, inFlight)

	log := decisionsInLog(t, b)
	guard := signing.NewReplayGuard(nil)
	for _, env := range envs {
		r, _ := st.Get(env.ApprovalID)
		if r.Final == nil {
			t.Errorf("%s: still open", r.ID)
			continue
		}
		if got := runnerPick(t, b, r, log[r.ID], guard); got != r.Final.EventID {
			t.Errorf("%s: a runner acts on %q, the fold on %s", r.ID, got, r.Final.EventID)
		}
	}
	again := b.rebuilt(t).State()
	converged(t, st, again, n)
}

// TestDecisionRacingExpiry: requests whose approver clicks within a few
// milliseconds of the deadline while both instances expire overdue
// requests every 20 ms. Instance A holds approvers' decisions back 60 ms
// before writing them, so an approval A signed before the deadline
// reaches the log after an expiry. Whatever won (the approval or one of
// the two expiries), both folds and a runner reading the log agree on it,
// and the approver's answer says the same: 200 only when the approval is
// final.
func TestDecisionRacingExpiry(t *testing.T) {
	b := realHarness(t)
	a := startInstanceWith(t, b, 60*time.Millisecond)
	const n = 20
	base := time.Now().Add(2 * time.Second)
	envs := make([]*events.Envelope, n)
	deadline := make([]time.Time, n)
	for i := range envs {
		deadline[i] = base.Add(time.Duration(i) * 150 * time.Millisecond).Truncate(time.Millisecond)
		envs[i] = b.raise(fmt.Sprintf("sess-race-%d", i%4), func(p *events.ApprovalRequested) { p.ExpiresAt = events.At(deadline[i]) })
	}
	waitFor(t, 20*time.Second, "requests folded on both", func() bool {
		return len(a.svc.State().Requests()) == n && len(b.svc.State().Requests()) == n
	})
	answers := make([]answer, n)
	var wg sync.WaitGroup
	for i, env := range envs {
		on := a.srv.URL
		if i%2 == 1 {
			on = b.srv.URL
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			// From 30 ms before the deadline to 8 ms after it.
			time.Sleep(time.Until(deadline[i].Add(time.Duration(i*2-30) * time.Millisecond)))
			answers[i] = decideOn(on, env.ApprovalID, "alice", map[string]any{"decision": "approve"})
		}()
	}
	wg.Wait()
	waitFor(t, 20*time.Second, "every request settled on both", func() bool {
		for _, env := range envs {
			ra, _ := a.svc.State().Get(env.ApprovalID)
			rb, _ := b.svc.State().Get(env.ApprovalID)
			if ra.Final == nil || rb.Final == nil {
				return false
			}
		}
		return true
	})
	converged(t, a.svc.State(), b.svc.State(), n)

	log := decisionsInLog(t, b)
	tally := map[string]int{}
	for i, env := range envs {
		r, _ := b.svc.State().Get(env.ApprovalID)
		an := answers[i]
		switch {
		case an.err != nil:
			t.Errorf("%s: %v", r.ID, an.err)
		case an.status == http.StatusOK:
			if r.Status != StatusApproved || r.Final.EventID != an.out.EventID {
				t.Errorf("%s: answered 200 (%s) but the fold says %s by %s", r.ID, an.out.EventID, r.Status, r.Final.EventID)
			}
			tally["approved"]++
		case an.status == http.StatusConflict && (an.code == string(signing.CodeExpired) || an.code == string(CodeAlreadyDecided)):
			if r.Status != StatusExpired {
				t.Errorf("%s: answered 409 %s but the fold says %s", r.ID, an.code, r.Status)
			}
			tally["refused "+an.code]++
		default:
			t.Errorf("%s: answered %d %s %s", r.ID, an.status, an.code, an.msg)
		}
		if got := runnerPick(t, b, r, log[r.ID], nil); got != r.Final.EventID {
			t.Errorf("%s: a runner takes %s first, the folds %s", r.ID, got, r.Final.EventID)
		}
		if len(log[r.ID]) > 1 {
			tally["two or more decisions in the log"]++
		}
		expiries := 0
		for _, d := range log[r.ID] {
			if dd, err := signing.DecisionOf(d); err == nil && dd.Decision == events.ApprovalExpired {
				expiries++
			}
		}
		if expiries > 1 {
			tally["expired by both instances"]++
		}
	}
	t.Logf("decision racing expiry, %d requests: %v", n, tally)
}
