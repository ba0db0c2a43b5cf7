package approvals

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/agentaudit/agentaudit/internal/approvals/signing"
	"github.com/agentaudit/agentaudit/internal/eventlog"
	"github.com/agentaudit/agentaudit/internal/events"
)

// serveOnce runs Serve with the signing key in keyFile on brokers until the
// returned stop is called; it returns the API's URL once the state is
// rebuilt and the log it writes.
func serveOnce(t *testing.T, brokers []string, keyFile, approvers string, node int64) (url string, logs *logBuffer, stop func()) {
	t.Helper()
	logs = &logBuffer{}
	ctx, cancel := context.WithCancel(context.Background())
	addr := make(chan net.Addr, 1)
	done := make(chan error, 1)
	go func() {
		done <- Serve(ctx, ServeConfig{Listen: "127.0.0.1:0", KeyFile: keyFile, ApproversFile: approvers, Brokers: brokers,
			Topics: eventlog.DefaultTopics, NodeID: node, ServiceID: "approvals-rot", Expire: true, ExpiryEvery: 20 * time.Millisecond,
			AlertWindow: time.Hour, SpoolDir: t.TempDir(),
			Logger:   slog.New(slog.NewJSONHandler(io.MultiWriter(logs, testWriter{t}), nil)),
			OnListen: func(a net.Addr) { addr <- a }})
	}()
	select {
	case a := <-addr:
		url = "http://" + a.String()
	case err := <-done:
		t.Fatalf("Serve: %v", err)
	}
	waitFor(t, 20*time.Second, "service ready", func() bool {
		resp, err := http.Get(url + "/healthz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == 200
	})
	stopped := false
	stop = func() {
		if !stopped {
			stopped = true
			cancel()
			if err := <-done; err != nil {
				t.Errorf("Serve: %v", err)
			}
		}
	}
	t.Cleanup(stop)
	return url, logs, stop
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

func getRequest(t *testing.T, url, id string) RequestView {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, url+"/api/v1/requests/"+id, nil)
	req.Header.Set("Authorization", "Bearer "+testTokens["alice"])
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var v RequestView
	if err := json.NewDecoder(resp.Body).Decode(&v); err != nil {
		t.Fatal(err)
	}
	return v
}

// TestKeyRotationKeepsEarlierDecisions: a request is approved under key
// k1, then the service restarts with a new key k2 and no --trust.
//   - With k2 made by `approve keygen` in the same directory (its keys.json
//     keeps k1), the earlier decision still verifies and the request stays
//     approved after its deadline.
//   - With k3 from another directory (k1 unknown), the decision cannot be
//     verified: that is logged as an error, and the request is not recorded
//     as expired on top of an approval a runner may have acted on.
func TestKeyRotationKeepsEarlierDecisions(t *testing.T) {
	tp := eventlog.DefaultTopics
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(1, tp.Events, tp.Approvals, tp.DLQ))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	brokers := c.ListenAddrs()
	dir := t.TempDir()
	approvers := filepath.Join(dir, "approvers.yaml")
	if err := os.WriteFile(approvers, fmt.Appendf(nil, `
approvers: [{id: alice, groups: [oncall], token_sha256: %s}]
groups: [{name: oncall, may_answer: [{kinds: [tool_call]}]}]
`, HashToken(testTokens["alice"])), 0o600); err != nil {
		t.Fatal(err)
	}
	keys := filepath.Join(dir, "keys")
	signer1, _, err := signing.WriteKeyFiles(keys, "k1")
	if err != nil {
		t.Fatal(err)
	}
	url, _, stop := serveOnce(t, brokers, signer1, approvers, 201)

	runner, err := eventlog.NewProducer(context.Background(), brokers, "runner-rot")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { runner.Close(context.Background()) })
	ids, _ := events.NewIDGen(202)
	id := ids.Next().String()
	env, err := events.New(events.ApprovalRequested{Kind: events.ApprovalKindToolCall, Summary: "git push origin main",
		Reason: "pushing publishes commits", ReasonCode: events.ReasonNeedsApproval, RuleID: "git-push", Risk: events.RiskMedium,
		Requester: events.Actor{Type: events.ActorAgent, ID: "claude-1"}, Scopes: []events.ApprovalScope{events.ScopeOnce},
		ExpiresAt: events.At(time.Now().Add(3 * time.Second))},
		events.WithEventID(id), events.WithApproval(id), events.WithSession("sess-rot", "runner-rot"), events.WithTenant(tenant),
		events.WithActor(events.ActorAgent, "claude-1"))
	if err != nil {
		t.Fatal(err)
	}
	if err := runner.Emit(t.Context(), env); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, "request seen", func() bool { return getRequest(t, url, id).ID == id })
	req, _ := http.NewRequest(http.MethodPost, url+"/api/v1/requests/"+id+"/decision", strings.NewReader(`{"decision":"approve"}`))
	req.Header.Set("Authorization", "Bearer "+testTokens["alice"])
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("approve: %s", resp.Status)
	}
	stop()

	// Rotation as the README says: keep the old key aside, keygen again.
	if err := os.Rename(signer1, signer1+".old"); err != nil {
		t.Fatal(err)
	}
	signer2, _, err := signing.WriteKeyFiles(keys, "k2")
	if err != nil {
		t.Fatal(err)
	}
	url, logs, stop := serveOnce(t, brokers, signer2, approvers, 203)
	time.Sleep(time.Until(env.EventTime.Add(3500 * time.Millisecond)))
	time.Sleep(200 * time.Millisecond) // some expiry ticks past the deadline
	if v := getRequest(t, url, id); v.Status != StatusApproved || len(v.History) != 1 || v.History[0].Rejection != "" {
		t.Errorf("after the rotation: status %s history %+v, want approved with its k1 decision accepted", v.Status, v.History)
	}
	if strings.Contains(logs.String(), string(signing.CodeUnknownKey)) {
		t.Errorf("the rotated service rejected a decision as unknown_key:\n%s", logs.String())
	}
	stop()

	// A key from elsewhere: k1 is unknown here.
	signer3, _, err := signing.WriteKeyFiles(filepath.Join(dir, "elsewhere"), "k3")
	if err != nil {
		t.Fatal(err)
	}
	url, logs, _ = serveOnce(t, brokers, signer3, approvers, 204)
	time.Sleep(300 * time.Millisecond)
	v := getRequest(t, url, id)
	if v.Status != StatusPending || len(v.History) != 1 || v.History[0].Rejection != signing.CodeUnknownKey {
		t.Errorf("with k1 unknown: status %s history %+v, want pending with the decision rejected unknown_key", v.Status, v.History)
	}
	var sawError bool
	for _, line := range strings.Split(logs.String(), "\n") {
		if strings.Contains(line, `"level":"ERROR"`) && strings.Contains(line, `"rejection":"unknown_key"`) && strings.Contains(line, `"key_id":"k1"`) {
			sawError = true
		}
	}
	if !sawError {
		t.Errorf("no ERROR log naming the unknown key k1:\n%s", logs.String())
	}
}
