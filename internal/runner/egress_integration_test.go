package runner

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/agentaudit/agentaudit/internal/events"
)

// stubResolver answers the proxy's lookups from a table; any other name
// fails, so no test ever resolves (or dials) a real name.
type stubResolver map[string]string

func (r stubResolver) LookupNetIP(_ context.Context, _, host string) ([]netip.Addr, error) {
	if a, ok := r[host]; ok {
		return []netip.Addr{netip.MustParseAddr(a)}, nil
	}
	return nil, &net.DNSError{Err: "no such host", Name: host, IsNotFound: true}
}

// searchableDir is a directory under /tmp with mode, which the Podman
// user can traverse (t.TempDir is under a 0700 root directory).
func searchableDir(t *testing.T, pattern string, mode os.FileMode) string {
	t.Helper()
	dir, err := os.MkdirTemp("", pattern)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, mode); err != nil {
		t.Fatal(err)
	}
	return dir
}

// TestIntegrationEgress runs a runner session with an egress policy against
// the real Kafka and Podman: the sandbox reaches a test server on the
// host's 127.0.0.1 only through the session's proxy (the supervisor's bridge), a
// metadata destination is refused with its reason before any dial, and an
// ask destination passes after a signed approval raised through the
// runner's approval path. Every connection is a net.egress event on the
// session's chain.
func TestIntegrationEgress(t *testing.T) {
	ctx := context.Background()
	// A parent the runner must create: it gets 0711 like the root.
	socketRoot := filepath.Join(searchableDir(t, "agentaudit-runner-egress-", 0o711), "egress")

	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "hello %s %s", r.Method, r.URL.Path)
	}))
	defer srv.Close()
	port := srv.Listener.Addr().(*net.TCPAddr).Port
	policyFile := filepath.Join(t.TempDir(), "egress.yaml")
	pol := fmt.Sprintf(`id: runner-it-egress
default: deny
rules:
  - id: test-server
    decision: allow
    cidrs: ["127.0.0.1/32"]
    ports: [%[1]d]
  - id: ask-test
    decision: ask
    hosts: [ask.test]
    ports: [%[1]d]
`, port)
	if err := os.WriteFile(policyFile, []byte(pol), 0o644); err != nil {
		t.Fatal(err)
	}
	e := newITEnvWith(t, 20*time.Second, func(c *Config) {
		c.EgressPolicy, c.EgressSocketRoot = policyFile, socketRoot
		c.EgressResolver = stubResolver{"ask.test.": "127.0.0.1", "meta.test.": "169.254.169.254"}
	})
	if fi, err := os.Stat(socketRoot); err != nil || fi.Mode().Perm() != 0o711 {
		t.Fatalf("socket root: %v %v", fi.Mode(), err)
	}
	ws := itWorkspace(t)
	s := e.open(t, ws)
	// The supervisor (PID 1) listens for the bridge before it says hello,
	// so the first call finds it listening.
	run := func(t *testing.T, cmd string) *ExecResult {
		t.Helper()
		res, err := s.Call(ctx, shell(cmd))
		if err != nil {
			t.Fatalf("%s: %v", cmd, err)
		}
		return res.Exec
	}
	t.Run("allowed through the proxy", func(t *testing.T) {
		r := run(t, fmt.Sprintf("curl -sS --max-time 10 http://127.0.0.1:%d/allowed", port))
		if r.ExitCode != 0 || string(r.Stdout.Data) != "hello GET /allowed" {
			t.Fatalf("curl: exit %d stdout %q stderr %q", r.ExitCode, r.Stdout.Data, r.Stderr.Data)
		}
	})

	t.Run("no way around the proxy", func(t *testing.T) {
		r := run(t, fmt.Sprintf("curl -sS --noproxy '*' --max-time 5 http://127.0.0.1:%d/direct", port))
		if r.ExitCode != 7 {
			t.Errorf("direct: exit %d stdout %q stderr %q, want 7 (connection refused)", r.ExitCode, r.Stdout.Data, r.Stderr.Data)
		}
	})

	t.Run("metadata denied with reason", func(t *testing.T) {
		r := run(t, fmt.Sprintf("curl -sS -o /dev/null -D - --max-time 10 http://meta.test:%d/latest/meta-data/", port))
		out := string(r.Stdout.Data)
		if r.ExitCode != 0 || !strings.HasPrefix(out, "HTTP/1.1 403 Forbidden\r\n") || !strings.Contains(out, "X-Deny-Reason: metadata_address\r\n") {
			t.Errorf("metadata: exit %d stdout %q stderr %q", r.ExitCode, out, r.Stderr.Data)
		}
	})

	t.Run("ask passes after a signed approval, then for the session", func(t *testing.T) {
		cmd := fmt.Sprintf("curl -sS -w ' %%{http_code}' --max-time 30 http://ask.test:%d/asked", port)
		ch := asyncCall(s, shell(cmd))
		req := e.requests.next(t, s.ID(), 0)
		p, _ := req.DecodePayload()
		ar := p.(*events.ApprovalRequested)
		if ar.Kind != events.ApprovalKindEgress || ar.RuleID != "ask-test" || ar.ReasonCode != events.ReasonNeedsApproval ||
			req.Policy == nil || req.Policy.ID != "runner-it-egress" || !strings.Contains(ar.Summary, fmt.Sprintf("ask.test:%d", port)) ||
			len(ar.Scopes) != 2 || ar.RequestEventID == "" {
			t.Errorf("approval.requested: %+v policy %+v", ar, req.Policy)
		}
		time.Sleep(300 * time.Millisecond) // the connection waits meanwhile
		e.answer(t, e.signer, req, events.ApprovalApproved, events.ScopeSession)
		o := waitOutcome(t, ch)
		if o.err != nil || o.res.Exec.ExitCode != 0 || string(o.res.Exec.Stdout.Data) != "hello GET /asked 200" {
			t.Fatalf("approved: %v %+v", o.err, o.res)
		}
		// Approved for the session: the same destination passes again
		// without a second request.
		r := run(t, strings.Replace(cmd, "/asked", "/again", 1))
		if r.ExitCode != 0 || string(r.Stdout.Data) != "hello GET /again 200" {
			t.Fatalf("again: exit %d stdout %q stderr %q", r.ExitCode, r.Stdout.Data, r.Stderr.Data)
		}
	})

	id := s.ID()
	if err := s.Close(ctx, events.EndCompleted); err != nil {
		t.Fatal(err)
	}
	if left, _ := os.ReadDir(socketRoot); len(left) != 0 {
		t.Errorf("socket directories left after the session: %v", left)
	}
	evs := readSession(t, e.brokers, e.topics.Events, id)
	// The runner's approval.requested travels on audit.approvals, in the
	// same chain.
	chain := append(append([]*events.Envelope(nil), evs...), e.requests.all(id)...)
	if err := events.VerifyChain(chain, events.AnyOrder()); err != nil {
		t.Errorf("chain: %v", err)
	}
	type egress struct {
		Phase, Host, Decision, Reason, Rule, IP string
		Status                                  uint16
		Approval                                bool
	}
	var got []egress
	var ended *events.SessionEnded
	for _, ev := range evs {
		p, err := ev.DecodePayload()
		if err != nil {
			t.Fatal(err)
		}
		switch pl := p.(type) {
		case *events.NetEgress:
			got = append(got, egress{pl.Phase, pl.Host, string(pl.Decision), string(pl.ReasonCode), pl.RuleID, pl.ResolvedIP, pl.StatusCode, ev.ApprovalID != ""})
			if ev.Policy == nil || ev.Policy.ID != "runner-it-egress" || ev.Agent == nil || ev.Agent.Name != "it-agent" {
				t.Errorf("net.egress envelope: policy %+v agent %+v", ev.Policy, ev.Agent)
			}
		case *events.SessionEnded:
			ended = pl
		}
	}
	want := []egress{
		{"decision", "127.0.0.1", "allow", "allowlisted", "test-server", "127.0.0.1", 0, false},
		{"closed", "127.0.0.1", "allow", "allowlisted", "test-server", "127.0.0.1", 200, false},
		{"decision", "meta.test", "deny", "metadata_address", "", "169.254.169.254", 403, false},
		{"decision", "ask.test", "ask", "needs_approval", "ask-test", "127.0.0.1", 0, false},
		{"decision", "ask.test", "allow", "approved", "ask-test", "127.0.0.1", 0, true},
		{"closed", "ask.test", "allow", "approved", "ask-test", "127.0.0.1", 200, true},
		{"decision", "ask.test", "allow", "approved_for_session", "ask-test", "127.0.0.1", 0, true},
		{"closed", "ask.test", "allow", "approved_for_session", "ask-test", "127.0.0.1", 200, true},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("net.egress events (-want +got):\n%s", diff)
	}
	if ended == nil || ended.Counts.EgressAllowed != 3 || ended.Counts.EgressDenied != 1 {
		t.Errorf("session.ended: %+v", ended)
	}
}

// all returns the approval.requested events of session seen so far.
func (r *requestReader) all(session string) []*events.Envelope {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []*events.Envelope
	for _, e := range r.seen {
		if e.SessionID == session {
			out = append(out, e)
		}
	}
	return out
}

// readSession reads every event of session from topic, up to its
// session.ended.
func readSession(t *testing.T, brokers []string, topic, session string) []*events.Envelope {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.ConsumeTopics(topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.FetchMaxWait(200*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	var out []*events.Envelope
	for ctx.Err() == nil {
		done := false
		cl.PollFetches(ctx).EachRecord(func(rec *kgo.Record) {
			env, err := events.Decode(rec.Value)
			if err != nil {
				t.Errorf("invalid event on %s: %v", topic, err)
				return
			}
			if env.SessionID == session {
				out = append(out, env)
				done = done || env.EventType == events.TypeSessionEnded
			}
		})
		if done {
			return out
		}
	}
	t.Fatalf("no session.ended for %s on %s (%d events read)", session, topic, len(out))
	return nil
}
