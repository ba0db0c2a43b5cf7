package approvals

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/agentaudit/agentaudit/internal/events"
)

// step is one API call and what it must answer.
type step struct {
	who        string
	body       any
	hdr        map[string]string
	wantStatus int
	wantCode   string // error code, for refusals
	wantResult Result // for 200s
	wantState  Status // request status afterwards ("" to skip)
}

func TestDecisionAPI(t *testing.T) {
	clock := newAtomicClock(time.Now().UTC())
	h := newHarness(t, harnessConfig{clock: clock})
	approve := func(scope events.ApprovalScope) map[string]any {
		return map[string]any{"decision": "approve", "scope": scope, "comment": "looks fine"}
	}
	deny := map[string]any{"decision": "deny", "comment": "not during the freeze"}
	deploy := func(p *events.ApprovalRequested) { p.RuleID = "deploy-prod"; p.Summary = "kubectl rollout prod" }
	onceOnly := func(p *events.ApprovalRequested) { p.Scopes = []events.ApprovalScope{events.ScopeOnce} }
	twoPerson := func(p *events.ApprovalRequested) { p.RuleID = "two-person-net" }
	egressHigh := func(p *events.ApprovalRequested) { p.Kind = events.ApprovalKindEgress; p.RuleID = "egress-ask" }

	tests := []struct {
		name   string
		mutate []func(*events.ApprovalRequested)
		id     string // request id instead of a new request
		steps  []step
	}{
		{name: "no token", steps: []step{{who: "", body: approve("once"), wantStatus: 401, wantCode: "unauthenticated", wantState: StatusPending}}},
		{name: "unknown token", steps: []step{{who: "not-a-real-token", body: approve("once"), wantStatus: 401, wantCode: "unauthenticated", wantState: StatusPending}}},
		{name: "approve once", steps: []step{{who: "alice", body: approve("once"), wantStatus: 200, wantResult: ResultAccepted, wantState: StatusApproved}}},
		{name: "approve for session", steps: []step{{who: "bob", body: approve("session"), wantStatus: 200, wantResult: ResultAccepted, wantState: StatusApproved}}},
		{name: "deny", steps: []step{{who: "alice", body: deny, wantStatus: 200, wantResult: ResultAccepted, wantState: StatusDenied}}},
		{name: "self approval", steps: []step{{who: "claude-1", body: approve("once"), wantStatus: 403, wantCode: "self_approval", wantState: StatusPending}}},
		{name: "self denial", steps: []step{{who: "claude-1", body: deny, wantStatus: 403, wantCode: "self_approval", wantState: StatusPending}}},
		{name: "wrong group for a restricted rule", mutate: []func(*events.ApprovalRequested){deploy},
			steps: []step{{who: "alice", body: approve("once"), wantStatus: 403, wantCode: "wrong_group", wantState: StatusPending}}},
		{name: "release group answers deploy", mutate: []func(*events.ApprovalRequested){deploy},
			steps: []step{{who: "carol", body: approve("once"), wantStatus: 200, wantResult: ResultAccepted, wantState: StatusApproved}}},
		{name: "wrong group for kind and risk", mutate: []func(*events.ApprovalRequested){egressHigh},
			steps: []step{{who: "dave", body: approve("once"), wantStatus: 403, wantCode: "wrong_group", wantState: StatusPending}}},
		{name: "already decided", steps: []step{
			{who: "alice", body: deny, wantStatus: 200, wantResult: ResultAccepted, wantState: StatusDenied},
			{who: "bob", body: approve("once"), wantStatus: 409, wantCode: "already_decided", wantState: StatusDenied},
		}},
		{name: "scope not offered", mutate: []func(*events.ApprovalRequested){onceOnly},
			steps: []step{{who: "alice", body: approve("session"), wantStatus: 422, wantCode: "scope_not_offered", wantState: StatusPending}}},
		{name: "denial with a scope", steps: []step{{who: "alice", body: map[string]any{"decision": "deny", "scope": "once"}, wantStatus: 422, wantCode: "invalid_decision", wantState: StatusPending}}},
		{name: "unknown decision word", steps: []step{{who: "alice", body: map[string]any{"decision": "maybe"}, wantStatus: 400, wantCode: "bad_request", wantState: StatusPending}}},
		{name: "unknown field", steps: []step{{who: "alice", body: map[string]any{"decision": "approve", "approver": "root"}, wantStatus: 400, wantCode: "bad_request", wantState: StatusPending}}},
		{name: "comment too long", steps: []step{{who: "alice", body: map[string]any{"decision": "deny", "comment": strings.Repeat("x", 2049)}, wantStatus: 400, wantCode: "bad_request", wantState: StatusPending}}},
		{name: "unknown request", id: "123456789", steps: []step{{who: "alice", body: approve("once"), wantStatus: 404, wantCode: "unknown_approval"}}},
		{name: "two-person rule", mutate: []func(*events.ApprovalRequested){twoPerson}, steps: []step{
			{who: "alice", body: approve("session"), wantStatus: 200, wantResult: ResultPartial, wantState: StatusPending},
			{who: "alice", body: approve("once"), wantStatus: 409, wantCode: "duplicate_approver", wantState: StatusPending},
			{who: "claude-1", body: approve("once"), wantStatus: 403, wantCode: "self_approval", wantState: StatusPending},
			{who: "bob", body: approve("once"), wantStatus: 200, wantResult: ResultAccepted, wantState: StatusApproved},
		}},
		{name: "two-person rule, one denial denies", mutate: []func(*events.ApprovalRequested){twoPerson}, steps: []step{
			{who: "alice", body: approve("once"), wantStatus: 200, wantResult: ResultPartial, wantState: StatusPending},
			{who: "bob", body: deny, wantStatus: 200, wantResult: ResultAccepted, wantState: StatusDenied},
		}},
		{name: "cross-origin post", steps: []step{{who: "alice", body: approve("once"), hdr: map[string]string{"Origin": "http://evil.example"},
			wantStatus: 403, wantCode: "cross_origin", wantState: StatusPending}}},
		{name: "cross-site fetch metadata", steps: []step{{who: "alice", body: approve("once"), hdr: map[string]string{"Sec-Fetch-Site": "cross-site"},
			wantStatus: 403, wantCode: "cross_origin", wantState: StatusPending}}},
		{name: "form content type", steps: []step{{who: "alice", body: approve("once"), hdr: map[string]string{"Content-Type": "application/x-www-form-urlencoded"},
			wantStatus: 415, wantCode: "unsupported_media_type", wantState: StatusPending}}},
		{name: "text/plain content type", steps: []step{{who: "alice", body: approve("once"), hdr: map[string]string{"Content-Type": "text/plain"},
			wantStatus: 415, wantCode: "unsupported_media_type", wantState: StatusPending}}},
		{name: "same-origin post", steps: []step{{who: "alice", body: approve("once"), hdr: map[string]string{"Origin": "SELF", "Sec-Fetch-Site": "same-origin"},
			wantStatus: 200, wantResult: ResultAccepted, wantState: StatusApproved}}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			id := tc.id
			if id == "" {
				id = h.raised("sess-"+strings.Map(func(r rune) rune {
					if r >= 'a' && r <= 'z' || r >= '0' && r <= '9' {
						return r
					}
					return '-'
				}, tc.name), tc.mutate...)
			}
			for i, st := range tc.steps {
				hdr := map[string]string{}
				for k, v := range st.hdr {
					if v == "SELF" {
						v = h.srv.URL
					}
					hdr[k] = v
				}
				status, body := h.call(http.MethodPost, "/api/v1/requests/"+id+"/decision", st.who, st.body, hdr)
				got := step{who: st.who, body: st.body, hdr: st.hdr, wantStatus: status}
				if status == 200 {
					var out DecisionOutput
					if err := json.Unmarshal(body, &out); err != nil {
						t.Fatalf("step %d: %v: %s", i, err, body)
					}
					got.wantResult = out.Result
				} else {
					got.wantCode = errCode(body)
				}
				if r, ok := h.svc.State().Get(id); ok {
					got.wantState = r.Status
				}
				if diff := cmp.Diff(st, got, cmp.AllowUnexported(step{})); diff != "" {
					t.Errorf("step %d (%s): -want +got\n%s\nbody: %s", i, st.who, diff, body)
				}
			}
		})
	}

	// Every final decision the service wrote verifies like a runner
	// verifies it; the partial approvals do not.
	for _, r := range h.svc.State().Requests() {
		for _, a := range r.History {
			if a.Result == ResultRejected {
				t.Errorf("request %s: the fold rejected decision %s (%s): the service wrote a decision it should have refused", r.ID, a.EventID, a.Rejection)
			}
		}
	}
}

func TestExpiry(t *testing.T) {
	clock := newAtomicClock(time.Now().UTC())
	h := newHarness(t, harnessConfig{clock: clock})
	sse := h.subscribe("alice")
	soon := h.raised("sess-exp", func(p *events.ApprovalRequested) { p.ExpiresAt = events.At(clock.now().Add(time.Minute)) })
	later := h.raised("sess-exp", func(p *events.ApprovalRequested) { p.ExpiresAt = events.At(clock.now().Add(time.Hour)) })

	clock.add(2 * time.Minute) // nobody looks: the ticker must expire it
	waitFor(t, 10*time.Second, "expiry applied", func() bool {
		r, _ := h.svc.State().Get(soon)
		return r.Final != nil
	})
	r, _ := h.svc.State().Get(soon)
	want := Decision{Outcome: events.ApprovalExpired, ReasonCode: events.ReasonApprovalExpired,
		Approver: events.Actor{Type: events.ActorSystem, ID: h.svc.emitID}, DecidedAt: clock.now().Truncate(time.Microsecond), KeyID: "svc-k1"}
	if diff := cmp.Diff(want, *r.Final, cmp.FilterPath(func(p cmp.Path) bool {
		return p.Last().String() == ".EventID" || p.Last().String() == ".DecidedAt"
	}, cmp.Ignore())); diff != "" {
		t.Errorf("expiry decision -want +got\n%s", diff)
	}
	if r.Status != StatusExpired {
		t.Errorf("status %s, want expired", r.Status)
	}
	if l, _ := h.svc.State().Get(later); l.Status != StatusPending {
		t.Errorf("request due later is %s, want pending", l.Status)
	}
	status, body := h.call(http.MethodPost, "/api/v1/requests/"+soon+"/decision", "alice", map[string]any{"decision": "approve"}, nil)
	if status != http.StatusConflict || errCode(body) != "expired" {
		t.Errorf("approving an expired request: %d %s, want 409 expired", status, body)
	}
	// The expiry reached the event stream too.
	deadline := time.After(5 * time.Second)
	for {
		select {
		case f := <-sse.frames:
			var ch ChangeView
			if f["event"] == "change" && json.Unmarshal([]byte(f["data"]), &ch) == nil && ch.ApprovalID == soon && ch.Status == StatusExpired {
				return
			}
		case <-deadline:
			t.Fatal("no change event for the expiry")
		}
	}
}

func TestRateLimitedAuthentication(t *testing.T) {
	clock := newAtomicClock(time.Now().UTC())
	h := newHarness(t, harnessConfig{clock: clock, auth: []AuthOption{WithLimiter(NewLimiter(3, time.Minute, 100, clock.now))}})
	var got []int
	for i := 0; i < 4; i++ {
		status, _ := h.call(http.MethodGet, "/api/v1/requests", "wrong-token-"+string(rune('a'+i)), nil, nil)
		got = append(got, status)
	}
	// A valid token from the same address is refused too while limited.
	status, body := h.call(http.MethodGet, "/api/v1/requests", "alice", nil, nil)
	got = append(got, status)
	if diff := cmp.Diff([]int{401, 401, 401, 429, 429}, got); diff != "" {
		t.Errorf("statuses -want +got\n%s", diff)
	}
	if errCode(body) != "rate_limited" {
		t.Errorf("code %q, want rate_limited", errCode(body))
	}
	clock.add(time.Minute + time.Second) // one failure refilled
	if status, _ := h.call(http.MethodGet, "/api/v1/requests", "alice", nil, nil); status != 200 {
		t.Errorf("after the refill: %d, want 200", status)
	}
	// Recorded: a log line per refusal and the metric.
	logs := h.logs.String()
	if n := strings.Count(logs, `"msg":"authentication refused"`); n != 5 {
		t.Errorf("%d 'authentication refused' log lines, want 5", n)
	}
	_, metrics := h.call(http.MethodGet, "/metrics", "", nil, nil)
	for _, want := range []string{`approvals_auth_failures_total{code="unauthenticated"} 3`, `approvals_auth_failures_total{code="rate_limited"} 2`} {
		if !strings.Contains(string(metrics), want) {
			t.Errorf("metrics lack %q", want)
		}
	}
}

func TestTokensNeverLogged(t *testing.T) {
	h := newHarness(t, harnessConfig{})
	id := h.raised("sess-log")
	wrong := "tok-wrong-5e2b9c01d4"
	h.call(http.MethodGet, "/api/v1/requests?status=pending", "alice", nil, nil)
	h.call(http.MethodGet, "/api/v1/requests/"+id, "bob", nil, nil)
	h.call(http.MethodGet, "/api/v1/me", wrong, nil, nil)
	h.call(http.MethodPost, "/api/v1/requests/"+id+"/decision", "claude-1", map[string]any{"decision": "approve"}, nil)
	h.call(http.MethodPost, "/api/v1/requests/"+id+"/decision", wrong, map[string]any{"decision": "approve"}, nil)
	h.call(http.MethodPost, "/api/v1/requests/"+id+"/decision", "alice", map[string]any{"decision": "approve", "comment": "ok"}, nil)
	h.stop()
	logs := h.logs.String()
	if !strings.Contains(logs, `"msg":"authentication refused"`) || !strings.Contains(logs, `"approver":"alice"`) {
		t.Fatalf("the log misses the expected lines; the assertion below would be vacuous:\n%s", logs)
	}
	for who, tok := range testTokens {
		for _, secret := range []string{tok, HashToken(tok)} {
			if strings.Contains(logs, secret) {
				t.Errorf("the log holds %s's token or its hash", who)
			}
		}
	}
	if strings.Contains(logs, wrong) {
		t.Error("the log holds a refused token")
	}
}

func TestReadEndpoints(t *testing.T) {
	h := newHarness(t, harnessConfig{})
	a := h.raised("sess-read-a")
	b := h.raised("sess-read-b", func(p *events.ApprovalRequested) { p.RuleID = "deploy-prod" })
	if status, _ := h.call(http.MethodPost, "/api/v1/requests/"+a+"/decision", "alice", map[string]any{"decision": "deny"}, nil); status != 200 {
		t.Fatalf("deny: %d", status)
	}
	list := func(q, who string) []string {
		t.Helper()
		status, body := h.call(http.MethodGet, "/api/v1/requests"+q, who, nil, nil)
		if status != 200 {
			t.Fatalf("list %s: %d %s", q, status, body)
		}
		var rs []RequestView
		if err := json.Unmarshal(body, &rs); err != nil {
			t.Fatal(err)
		}
		var ids []string
		for _, r := range rs {
			ids = append(ids, r.ID+":"+string(r.Status))
		}
		return ids
	}
	for _, tc := range []struct {
		q    string
		want []string
	}{
		{"", []string{b + ":pending", a + ":denied"}},
		{"?status=pending", []string{b + ":pending"}},
		{"?status=denied", []string{a + ":denied"}},
		{"?session=sess-read-a", []string{a + ":denied"}},
		{"?kind=egress", nil},
	} {
		if diff := cmp.Diff(tc.want, list(tc.q, "alice")); diff != "" {
			t.Errorf("list%s -want +got\n%s", tc.q, diff)
		}
	}
	for _, q := range []string{"?status=bogus", "?kind=bogus", "?limit=0"} {
		if status, _ := h.call(http.MethodGet, "/api/v1/requests"+q, "alice", nil, nil); status != 400 {
			t.Errorf("list%s: %d, want 400", q, status)
		}
	}
	status, body := h.call(http.MethodGet, "/api/v1/requests/"+b, "alice", nil, nil)
	var v RequestView
	if status != 200 || json.Unmarshal(body, &v) != nil {
		t.Fatalf("show: %d %s", status, body)
	}
	// alice may not answer a deploy rule; the view says so, and shows the
	// tool call with its full arguments.
	if v.MayAnswer || v.Refusal != CodeWrongGroup {
		t.Errorf("may_answer %v refusal %q, want false wrong_group", v.MayAnswer, v.Refusal)
	}
	waitFor(t, 5*time.Second, "subject event followed", func() bool {
		_, body = h.call(http.MethodGet, "/api/v1/requests/"+b, "alice", nil, nil)
		return json.Unmarshal(body, &v) == nil && v.Subject != nil
	})
	if v.Subject.EventType != events.TypeToolCallRequested || !strings.Contains(string(v.Subject.Payload), `"argv":["kubectl","apply","-f","deploy.yaml"]`) {
		t.Errorf("subject %s %s", v.Subject.EventType, v.Subject.Payload)
	}
	if status, body := h.call(http.MethodGet, "/api/v1/me", "carol", nil, nil); status != 200 || !strings.Contains(string(body), `"groups":["release"]`) {
		t.Errorf("me: %d %s", status, body)
	}
	// Security headers on the inbox and the API.
	resp, err := http.Get(h.srv.URL + "/")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	for k, want := range map[string]string{"X-Frame-Options": "DENY", "X-Content-Type-Options": "nosniff"} {
		if got := resp.Header.Get(k); got != want {
			t.Errorf("%s: %q, want %q", k, got, want)
		}
	}
	if csp := resp.Header.Get("Content-Security-Policy"); !strings.Contains(csp, "script-src 'self'") || strings.Contains(csp, "unsafe-inline") || !strings.Contains(csp, "frame-ancestors 'none'") {
		t.Errorf("CSP %q", csp)
	}
	if status, _ := h.call(http.MethodGet, "/healthz", "", nil, nil); status != 200 {
		t.Errorf("healthz: %d", status)
	}
}

func TestHoldsAndRelease(t *testing.T) {
	h := newHarness(t, harnessConfig{})
	held := func(session string) *events.Envelope {
		env, err := events.New(events.SessionHeld{Reason: "exfiltration pattern", RuleID: "exfil-burst",
			By: events.Actor{Type: events.ActorRule, ID: "exfil-burst"}},
			events.WithIDs(h.ids), events.WithSession(session, "detect-test"), events.WithTenant(tenant),
			events.WithActor(events.ActorRule, "exfil-burst"))
		if err != nil {
			t.Fatal(err)
		}
		if err := h.runner.Emit(t.Context(), env); err != nil {
			t.Fatal(err)
		}
		waitFor(t, 10*time.Second, "hold folded", func() bool { return len(h.svc.State().Holds(session)) > 0 })
		return env
	}
	hold := held("sess-held")
	status, body := h.call(http.MethodGet, "/api/v1/holds", "alice", nil, nil)
	var hs []HoldView
	if status != 200 || json.Unmarshal(body, &hs) != nil || len(hs) != 1 || hs[0].EventID != hold.EventID {
		t.Fatalf("holds: %d %s", status, body)
	}
	if status, body := h.call(http.MethodPost, "/api/v1/holds/sess-held/release", "dave", map[string]any{"reason": "x"}, nil); status != 403 || errCode(body) != "wrong_group" {
		t.Errorf("dave releases: %d %s, want 403 wrong_group", status, body)
	}
	if status, body := h.call(http.MethodPost, "/api/v1/holds/sess-none/release", "alice", map[string]any{"reason": "x"}, nil); status != 404 || errCode(body) != "no_hold" {
		t.Errorf("release without hold: %d %s", status, body)
	}
	status, body = h.call(http.MethodPost, "/api/v1/holds/sess-held/release", "alice",
		map[string]any{"reason": "false positive: a backup job", "held_event_id": hold.EventID}, nil)
	var out ReleaseOutput
	if status != 200 || json.Unmarshal(body, &out) != nil || out.Released != 1 {
		t.Fatalf("release: %d %s", status, body)
	}
	if h.svc.State().Held("sess-held") {
		t.Error("session still held after release")
	}
}
