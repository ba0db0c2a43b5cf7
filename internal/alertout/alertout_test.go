package alertout

import (
	"context"
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

	"github.com/google/go-cmp/cmp"

	"github.com/agentaudit/agentaudit/internal/events"
	"github.com/agentaudit/agentaudit/internal/testenv"
)

func testAlert() Alert {
	t0 := time.Date(2026, 12, 6, 9, 0, 0, 0, time.UTC)
	return Alert{EventID: "2129446953094856704", Time: t0.Add(time.Second), Tenant: "acme", SessionID: "sess-1",
		RunnerID: "detect-a", AlertRaised: events.AlertRaised{RuleID: "egress.denied_burst", RuleVersion: "3",
			Severity: events.SeverityHigh, GroupKey: "sess-1", Count: 5, Suppressed: 2,
			FirstSeen: events.At(t0), LastSeen: events.At(t0.Add(time.Second)),
			MatchedEventIDs: []string{"1", "2"}, Message: "5 denied egress attempts in a minute", Action: "hold"}}
}

func TestParseOutput(t *testing.T) {
	for _, tc := range []struct {
		in, url, err string
	}{
		{in: "json=http://127.0.0.1:9/hook", url: "http://127.0.0.1:9/hook"},
		{in: "SLACK=https://hooks.example.test/T/B/x", url: "https://hooks.example.test/T/B/x"},
		{in: "alertmanager=http://127.0.0.1:9093", url: "http://127.0.0.1:9093/api/v2/alerts"},
		{in: "alertmanager=http://127.0.0.1:9093/custom", url: "http://127.0.0.1:9093/custom"},
		{in: "http://127.0.0.1/x", err: "not FORMAT=URL"},
		{in: "teams=http://127.0.0.1/x", err: `unknown format "teams"`},
		{in: "json=ftp://127.0.0.1/x", err: "not an http(s) URL"},
		{in: "json=", err: "not an http(s) URL"},
	} {
		o, err := ParseOutput(tc.in)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("%q: err %v, want %q", tc.in, err, tc.err)
			}
			continue
		}
		if err != nil || o.URL != tc.url {
			t.Errorf("%q: %+v %v, want URL %s", tc.in, o, err, tc.url)
		}
	}
}

func TestBodies(t *testing.T) {
	a := testAlert()
	b, err := Body(FormatJSON, a)
	if err != nil {
		t.Fatal(err)
	}
	var generic struct{ Alert map[string]any }
	if err := json.Unmarshal(b, &generic); err != nil {
		t.Fatal(err)
	}
	for k, want := range map[string]any{"event_id": a.EventID, "rule_id": a.RuleID, "severity": "high",
		"tenant": "acme", "session_id": "sess-1", "count": 5.0, "message": a.Message, "raised_by": "detect-a"} {
		if got := generic.Alert[k]; got != want {
			t.Errorf("json body %s = %v, want %v", k, got, want)
		}
	}

	b, _ = Body(FormatSlack, a)
	var slack slackMsg
	if err := json.Unmarshal(b, &slack); err != nil {
		t.Fatal(err)
	}
	if slack.Text != "[HIGH] egress.denied_burst: 5 denied egress attempts in a minute" {
		t.Errorf("slack text %q", slack.Text)
	}
	if len(slack.Attachments) != 1 || slack.Attachments[0].Color != "#d93025" || !strings.Contains(slack.Attachments[0].Footer, a.EventID) {
		t.Errorf("slack attachment %+v", slack.Attachments)
	}

	b, _ = Body(FormatAlertmanager, a)
	var am []amAlert
	if err := json.Unmarshal(b, &am); err != nil {
		t.Fatal(err)
	}
	if len(am) != 1 {
		t.Fatalf("alertmanager body %s", b)
	}
	want := map[string]string{"alertname": "egress.denied_burst", "severity": "high", "tenant": "acme",
		"session_id": "sess-1", "group_key": "sess-1", "source": "agentaudit"}
	if diff := cmp.Diff(want, am[0].Labels); diff != "" {
		t.Errorf("labels (-want +got):\n%s", diff)
	}
	if !am[0].StartsAt.Equal(a.FirstSeen.Time) || am[0].Annotations["event_id"] != a.EventID {
		t.Errorf("alertmanager alert %+v", am[0])
	}
}

// receiver is a local webhook that answers with the statuses it is given,
// then 200, and keeps what it got.
type receiver struct {
	mu       sync.Mutex
	statuses []int
	bodies   [][]byte
	paths    []string
	auth     []string
	calls    atomic.Int64
}

func (r *receiver) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	r.calls.Add(1)
	b, _ := io.ReadAll(req.Body)
	r.mu.Lock()
	defer r.mu.Unlock()
	code := http.StatusOK
	if len(r.statuses) > 0 {
		code, r.statuses = r.statuses[0], r.statuses[1:]
	}
	if code == http.StatusOK {
		r.bodies = append(r.bodies, b)
		r.paths = append(r.paths, req.URL.Path)
		r.auth = append(r.auth, req.Header.Get("Authorization"))
	}
	w.WriteHeader(code)
	fmt.Fprintln(w, http.StatusText(code))
}

func (r *receiver) got() (bodies [][]byte, paths, auth []string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([][]byte(nil), r.bodies...), append([]string(nil), r.paths...), append([]string(nil), r.auth...)
}

func serve(t *testing.T, statuses ...int) (*receiver, string) {
	t.Helper()
	r := &receiver{statuses: statuses}
	srv := httptest.NewServer(r) // 127.0.0.1
	t.Cleanup(srv.Close)
	return r, srv.URL
}

func fastRetry(attempts int) Option { return WithRetry(attempts, time.Millisecond, 5*time.Millisecond) }

func TestDeliveryRetriesThenDelivers(t *testing.T) {
	r, url := serve(t, 503, 429, 500)
	d, err := NewDeliverer([]Output{{Format: FormatJSON, URL: url + "/hook", Header: map[string]string{"Authorization": "Bearer t0k"}}},
		fastRetry(5), WithLogger(testenv.Logger(t, slog.LevelWarn)))
	if err != nil {
		t.Fatal(err)
	}
	if err := d.Deliver(context.Background(), testAlert()); err != nil {
		t.Fatal(err)
	}
	bodies, paths, auth := r.got()
	if len(bodies) != 1 || paths[0] != "/hook" || auth[0] != "Bearer t0k" {
		t.Errorf("received %d bodies at %v with %v", len(bodies), paths, auth)
	}
	if got, want := d.Stats()["json"], (OutputStats{Delivered: 1, Retries: 3}); got != want {
		t.Errorf("stats %+v, want %+v", got, want)
	}
}

func TestDeliveryDeadLetters(t *testing.T) {
	refusing, url1 := serve(t, 400)
	failing, url2 := serve(t, 500, 500, 500, 500)
	d, err := NewDeliverer([]Output{
		{Name: "refusing", Format: FormatJSON, URL: url1},
		{Name: "failing", Format: FormatSlack, URL: url2},
	}, fastRetry(3), WithLogger(testenv.Logger(t, slog.LevelError)))
	if err != nil {
		t.Fatal(err)
	}
	if err := d.Deliver(context.Background(), testAlert()); err != nil {
		t.Fatal(err)
	}
	st := d.Stats()
	// A refusal is final at once; a failure gets every attempt.
	if want := (OutputStats{DeadLettered: 1}); st["refusing"] != want || refusing.calls.Load() != 1 {
		t.Errorf("refusing: %+v after %d calls, want %+v after 1", st["refusing"], refusing.calls.Load(), want)
	}
	if want := (OutputStats{DeadLettered: 1, Retries: 2}); st["failing"] != want || failing.calls.Load() != 3 {
		t.Errorf("failing: %+v after %d calls, want %+v after 3", st["failing"], failing.calls.Load(), want)
	}
}

func TestUnreachableOutputIsRetriedThenDeadLettered(t *testing.T) {
	srv := httptest.NewServer(http.NotFoundHandler())
	url := srv.URL
	srv.Close() // nothing listens there now
	d, err := NewDeliverer([]Output{{Format: FormatAlertmanager, URL: url}}, fastRetry(2), WithLogger(testenv.Logger(t, slog.LevelError)))
	if err != nil {
		t.Fatal(err)
	}
	if err := d.Deliver(context.Background(), testAlert()); err != nil {
		t.Fatal(err)
	}
	if got, want := d.Stats()["alertmanager"], (OutputStats{Retries: 1, DeadLettered: 1}); got != want {
		t.Errorf("stats %+v, want %+v", got, want)
	}
}

func TestMinSeverity(t *testing.T) {
	r, url := serve(t)
	d, err := NewDeliverer([]Output{{Format: FormatJSON, URL: url, MinSeverity: events.SeverityCritical}})
	if err != nil {
		t.Fatal(err)
	}
	a := testAlert()
	d.Deliver(context.Background(), a) // high: skipped
	a.Severity = events.SeverityCritical
	d.Deliver(context.Background(), a)
	if bodies, _, _ := r.got(); len(bodies) != 1 {
		t.Errorf("delivered %d, want only the critical one", len(bodies))
	}
	if got := d.Stats()["json"]; got.Skipped != 1 || got.Delivered != 1 {
		t.Errorf("stats %+v", got)
	}
	if _, err := NewDeliverer([]Output{{Format: FormatJSON, URL: url, MinSeverity: "urgent"}}); err == nil {
		t.Error("an unknown severity is accepted")
	}
}
