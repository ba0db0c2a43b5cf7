package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/agentaudit/agentaudit/internal/approvals"
	"github.com/agentaudit/agentaudit/internal/approvals/signing"
	"github.com/agentaudit/agentaudit/internal/eventlog"
	"github.com/agentaudit/agentaudit/internal/events"
)

// service runs an approvals service on an in-process Kafka and returns its
// URL, alice's token and a function that raises a request as a runner.
func service(t *testing.T) (url, token string, raise func() string) {
	t.Helper()
	tp := eventlog.DefaultTopics
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(1, tp.Events, tp.Approvals, tp.DLQ))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	brokers := c.ListenAddrs()
	ctx, cancel := context.WithCancel(context.Background())
	tok, sum, err := approvals.GenerateToken()
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := approvals.ParseConfig([]byte(fmt.Sprintf(`
approvers: [{id: alice, name: Alice, groups: [oncall], token_sha256: %s}]
groups: [{name: oncall, may_answer: [{kinds: [tool_call]}]}]
`, sum)))
	if err != nil {
		t.Fatal(err)
	}
	auth, err := approvals.NewAuthenticator(cfg)
	if err != nil {
		t.Fatal(err)
	}
	signer, _, err := signing.GenerateKey("k1")
	if err != nil {
		t.Fatal(err)
	}
	ids, _ := events.NewIDGen(7)
	emitID := approvals.NewEmitterID("approvals-cli", ids)
	prod, err := eventlog.NewProducer(ctx, brokers, emitID)
	if err != nil {
		t.Fatal(err)
	}
	runner, err := eventlog.NewProducer(ctx, brokers, "runner-cli")
	if err != nil {
		t.Fatal(err)
	}
	svc, err := approvals.NewService(brokers, prod, signer, auth, ids, emitID)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- svc.Run(ctx) }()
	srv := httptest.NewServer(svc.Handler())
	t.Cleanup(func() {
		srv.Close()
		cancel()
		<-done
		prod.Close(context.Background())
		runner.Close(context.Background())
	})
	<-svc.Ready()
	rids, _ := events.NewIDGen(8)
	raise = func() string {
		id := rids.Next().String()
		env, err := events.New(events.ApprovalRequested{Kind: events.ApprovalKindToolCall, Summary: "git push origin main",
			Reason: "pushing publishes commits", ReasonCode: events.ReasonNeedsApproval, RuleID: "git-push", Risk: events.RiskMedium,
			Requester: events.Actor{Type: events.ActorAgent, ID: "claude-1"}, Scopes: []events.ApprovalScope{events.ScopeOnce, events.ScopeSession},
			ExpiresAt: events.At(time.Now().Add(10 * time.Minute))},
			events.WithEventID(id), events.WithApproval(id), events.WithSession("sess-cli", "runner-cli"), events.WithTenant("acme"),
			events.WithActor(events.ActorAgent, "claude-1"))
		if err != nil {
			t.Fatal(err)
		}
		if err := runner.Emit(ctx, env); err != nil {
			t.Fatal(err)
		}
		deadline := time.Now().Add(10 * time.Second)
		for {
			if _, ok := svc.State().Get(id); ok {
				return id
			}
			if time.Now().After(deadline) {
				t.Fatalf("request %s not folded", id)
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
	return srv.URL, tok, raise
}

func runCLI(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	var out, errb strings.Builder
	code := run(context.Background(), args, &out, &errb)
	return code, out.String(), errb.String()
}

func TestCLI(t *testing.T) {
	url, token, raise := service(t)
	t.Setenv("APPROVE_TOKEN", token)
	t.Setenv("APPROVE_URL", url)
	a, b := raise(), raise()

	code, out, errs := runCLI(t, "list")
	if code != 0 {
		t.Fatalf("list: %d %s", code, errs)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 3 || !strings.HasPrefix(lines[0], "ID") || !strings.HasPrefix(lines[1], b) || !strings.HasPrefix(lines[2], a) {
		t.Fatalf("list table:\n%s", out)
	}
	// Aligned: every row's SUMMARY column starts where the header's does.
	col := strings.Index(lines[0], "SUMMARY")
	for _, l := range lines[1:] {
		if !strings.HasPrefix(l[col:], "git push origin main") {
			t.Errorf("misaligned row %q", l)
		}
	}
	code, out, _ = runCLI(t, "show", a)
	if code != 0 || !strings.Contains(out, "git-push") || !regexp.MustCompile(`(?m)^You may answer +yes$`).MatchString(out) {
		t.Errorf("show: %d\n%s", code, out)
	}
	code, out, errs = runCLI(t, "approve", a, "--comment", "reviewed the diff", "--scope", "session", "--json")
	var dec approvals.DecisionOutput
	if code != 0 || json.Unmarshal([]byte(out), &dec) != nil {
		t.Fatalf("approve: %d %s %s", code, out, errs)
	}
	if dec.Result != approvals.ResultAccepted || dec.Request.Status != approvals.StatusApproved ||
		dec.Request.Final.Scope != events.ScopeSession || dec.Request.Final.Comment != "reviewed the diff" {
		t.Errorf("approve result %+v", dec)
	}
	code, _, errs = runCLI(t, "deny", a)
	if code != 3 || !strings.Contains(errs, "already_decided") {
		t.Errorf("deny after approve: exit %d, %q; want 3 already_decided", code, errs)
	}
	code, out, _ = runCLI(t, "deny", "--comment", "no pushes on Friday", b)
	if code != 0 || !strings.Contains(out, b+": denied") {
		t.Errorf("deny: %d %q", code, out)
	}
	code, out, _ = runCLI(t, "list", "--status", "all", "--json")
	var rs []approvals.RequestView
	if code != 0 || json.Unmarshal([]byte(out), &rs) != nil || len(rs) != 2 {
		t.Errorf("list --json: %d %s", code, out)
	}
	t.Setenv("APPROVE_TOKEN", "wrong")
	if code, _, errs := runCLI(t, "list"); code != 3 || !strings.Contains(errs, "unauthenticated") {
		t.Errorf("wrong token: %d %q", code, errs)
	}
	t.Setenv("APPROVE_TOKEN", "")
	if code, _, errs := runCLI(t, "list"); code != 1 || !strings.Contains(errs, "APPROVE_TOKEN") {
		t.Errorf("no token: %d %q", code, errs)
	}
	tokFile := filepath.Join(t.TempDir(), "token")
	os.WriteFile(tokFile, []byte(token+"\n"), 0o600)
	if code, _, errs := runCLI(t, "holds", "--token-file", tokFile); code != 0 {
		t.Errorf("holds with --token-file: %d %s", code, errs)
	}
}

func TestKeygenAndToken(t *testing.T) {
	dir := t.TempDir()
	code, out, errs := runCLI(t, "keygen", "--id", "approvals-1", "--out", dir)
	if code != 0 {
		t.Fatalf("keygen: %d %s", code, errs)
	}
	if _, err := signing.LoadSigner(filepath.Join(dir, "signer.pem")); err != nil {
		t.Errorf("signer.pem: %v", err)
	}
	if ks, err := signing.LoadKeySet(filepath.Join(dir, "keys.json")); err != nil || ks.Keys()[0].ID != "approvals-1" {
		t.Errorf("keys.json: %v", err)
	}
	if !strings.Contains(out, "signer.pem") {
		t.Errorf("keygen output %q", out)
	}
	code, out, _ = runCLI(t, "token", "--id", "alice", "--name", "Alice Example", "--groups", "oncall,release")
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if code != 0 || len(lines) != 3 {
		t.Fatalf("token: %d %q", code, out)
	}
	// The printed line is an approvers.yaml entry that logs the token in.
	cfg, err := approvals.ParseConfig([]byte("approvers:\n" + lines[2] + "\ngroups:\n  - {name: oncall, may_answer: [{}]}\n  - {name: release, may_answer: [{}]}\n"))
	if err != nil {
		t.Fatalf("the approvers.yaml line %q does not parse: %v", lines[2], err)
	}
	auth, err := approvals.NewAuthenticator(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if ap, err := auth.Authenticate(lines[0]); err != nil || ap.ID != "alice" || ap.Name != "Alice Example" || len(ap.Groups) != 2 {
		t.Errorf("token from approve token: %+v %v", ap, err)
	}
	code, _, errs = runCLI(t, "token", "-h")
	if code != 2 || !strings.Contains(errs, "approvers.yaml") || !strings.Contains(errs, "two_person:") {
		t.Errorf("approve token -h does not document approvers.yaml: %d %q", code, errs)
	}
	if code, _, errs := runCLI(t, "serve", "-h"); code != 2 || !strings.Contains(errs, "approvers.yaml (approve serve --approvers)") {
		t.Errorf("approve serve -h does not document approvers.yaml: %d %q", code, errs)
	}
	if code, out, _ := runCLI(t, "help"); code != 0 || !strings.Contains(out, "token_sha256:") || !strings.Contains(out, "may_answer:") {
		t.Errorf("approve help does not document approvers.yaml: %q", out)
	}
	if code, _, _ := runCLI(t, "serve", "--keys", ""); code != 2 {
		t.Errorf("serve without keys: exit %d, want 2", code)
	}
}

// TestServeSpoolsByDefault: approve serve without --spool still spools
// (the service refuses to run without one), so a Kafka outage cannot
// leave a gap in its chain.
func TestServeSpoolsByDefault(t *testing.T) {
	t.Setenv("APPROVE_SPOOL", "")
	t.Setenv("XDG_CACHE_HOME", t.TempDir())
	var c serveConfig
	fs := newFlags("serve", io.Discard)
	c.flags(fs)
	if _, err := parseArgs(fs, []string{"--keys", "k.pem", "--approvers", "a.yaml", "--id", "approvals-eu1"}); err != nil {
		t.Fatal(err)
	}
	if err := c.validate(); err != nil {
		t.Fatal(err)
	}
	if want := filepath.Join(os.Getenv("XDG_CACHE_HOME"), "agentaudit", "spool", "approvals-eu1"); c.Spool != want {
		t.Errorf("default spool %q, want %q", c.Spool, want)
	}
	if err := approvals.Serve(t.Context(), approvals.ServeConfig{}); !errors.Is(err, approvals.ErrNoSpool) {
		t.Errorf("Serve without a spool: %v, want ErrNoSpool", err)
	}
}
