package demo

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/agentaudit/agentaudit/internal/approvals"
	"github.com/agentaudit/agentaudit/internal/eventlog"
	"github.com/agentaudit/agentaudit/internal/events"
	"github.com/agentaudit/agentaudit/internal/sandbox"
)

// Result is what the demo's session did, step by step.
type Result struct {
	SessionID string
	RunnerID  string
	InboxURL  string
	// Ordinary are the allowed commands of step 1.
	Ordinary []Outcome
	// Allowed is a request to the allowed test server (step 2's control).
	Allowed Outcome
	// Denied is the request to a destination the egress policy denies:
	// its status line and X-Deny-Reason header.
	Denied       Outcome
	DeniedStatus string
	DeniedReason string
	// Asked is the request that needed approval, and the request the
	// approver answered.
	Asked         Outcome
	AskedApproval approvals.RequestView
	// Protected is the write to .git/hooks/pre-commit and its approval.
	Protected         Outcome
	ProtectedApproval approvals.RequestView
	HookWritten       bool // whether the file exists afterwards
	// Hold is the detection hold, the call it refused, the release and
	// the call after it.
	Hold      approvals.HoldView
	HeldCall  Outcome
	Released  approvals.ReleaseOutput
	AfterHold Outcome
	// Produced counts the session's events seen on Kafka by type; Stored
	// is how many of them ClickHouse holds.
	Produced map[string]int
	Stored   int
	// Timeline, Reports and Verify are the query outputs; VerifyCode is
	// `query verify`'s exit status (0: every chain intact).
	Timeline   string
	Reports    map[string]string
	Verify     string
	VerifyCode int
	// HTMLReports are the files written with --format html.
	HTMLReports []string
	Timings     []Timing
	Total       time.Duration
	// Agent is the real agent's session (Config.Agent), nil without one.
	Agent *AgentResult
}

type demo struct {
	cfg      Config
	p        *progress
	services []*service
	res      *Result
	approver *approvals.Client
}

// Run runs the whole demo (see the package doc) and stops every process it
// started. The Result holds what it has reached even when it fails.
func Run(ctx context.Context, cfg Config) (*Result, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	d := &demo{cfg: cfg, p: &progress{w: cfg.Out, start: time.Now()}, res: &Result{Reports: map[string]string{}}}
	defer d.stopServices()
	err := d.run(ctx)
	d.res.Timings, d.res.Total = d.p.timings, time.Since(d.p.start)
	if err == nil {
		d.p.printf("\nDone in %s. Logs: %s\n", round(d.res.Total), filepath.Join(cfg.Dir, "logs"))
		d.p.printf("%s", nextSteps(d.res))
	}
	return d.res, err
}

// nextSteps is what to do once the demo has ended: its services are
// stopped (the inbox URL it printed is gone), the events stay in
// ClickHouse.
func nextSteps(r *Result) string {
	var b strings.Builder
	b.WriteString("\nThe demo's services have stopped, so its inbox URL no longer answers; what it recorded stays in ClickHouse. Next:\n")
	if r.SessionID != "" {
		fmt.Fprintf(&b, "  set -a; . .testenv/env; set +a; bin/query session %s    the MCP session again\n", r.SessionID)
	}
	b.WriteString("  bin/query report --list                       every compliance report; bin/query verify checks the hash chains\n")
	b.WriteString("  make demo DEMO_FLAGS=--interactive            keep the inbox up and answer approvals yourself\n")
	if r.Agent != nil && r.Agent.SessionID != "" {
		fmt.Fprintf(&b, "  set -a; . .testenv/env; set +a; bin/query session %s    the %s session again\n", r.Agent.SessionID, r.Agent.Agent)
	}
	b.WriteString("  make demo DEMO_FLAGS=--agent=claude           run Claude Code instead of Codex (--agent=none: no real agent)\n")
	b.WriteString("  README.md, \"Running each binary against your own services\", runs each service by hand\n")
	return b.String()
}

func (d *demo) run(ctx context.Context) error {
	c := &d.cfg
	brokers := strings.Split(c.Env["KAFKA_BROKERS"], ",")
	topics := eventlog.Topics{Events: c.Prefix + ".events", Approvals: c.Prefix + ".approvals", DLQ: c.Prefix + ".dlq"}
	periodFrom := time.Now().UTC().Add(-time.Second).Truncate(time.Second)

	// 1. Bring-up.
	st := d.p.step("prepare " + c.Dir + ": approver key and token, egress policy, workspace")
	ws := filepath.Join(c.Dir, "workspace")
	for _, dir := range []string{c.Dir, filepath.Join(c.Dir, "logs"), filepath.Join(c.Dir, "reports")} {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return st.fail(err)
		}
		// The sandbox user must be able to search every directory above
		// the workspace.
		os.Chmod(dir, 0o755)
	}
	if err := os.RemoveAll(ws); err != nil {
		return st.fail(err)
	}
	if err := os.Mkdir(ws, 0o755); err != nil {
		return st.fail(err)
	}
	uid, err := strconv.Atoi(c.Env["PODMAN_UID"])
	if err != nil {
		uid = os.Getuid()
	}
	if os.Geteuid() == 0 {
		if err := sandbox.PrepareWorkspace(ws, uid, uid); err != nil {
			return st.fail(err)
		}
	}
	creds, err := d.prepareCredentials(ctx)
	if err != nil {
		return st.fail(err)
	}
	ts, err := startTestServers()
	if err != nil {
		return st.fail(err)
	}
	defer ts.close()
	egressPolicy, err := d.writeEgressPolicy(ts)
	if err != nil {
		return st.fail(err)
	}
	if err := ensureTopics(ctx, brokers, topics); err != nil {
		return st.fail(fmt.Errorf("create topics: %w", err))
	}
	st.done("test servers on 127.0.0.1:%d (allow) and :%d (ask); :%d is denied; topics %s.*",
		ts.allowedPort, ts.askPort, ts.deniedPort, c.Prefix)

	st = d.p.step("ingest migrate, then start ingest")
	if _, err := d.runTool(ctx, "ingest", "migrate"); err != nil {
		return st.fail(err)
	}
	ingestAddr, _ := freePort()
	if _, err := d.start(ctx, "ingest", "http://"+ingestAddr+"/healthz", d.env(),
		"ingest", "run", "--group", c.Prefix+"-ingest", "--topic-events", topics.Events,
		"--topic-approvals", topics.Approvals, "--topic-dlq", topics.DLQ, "--metrics-addr", ingestAddr,
		"--batch-wait", "200ms"); err != nil {
		return st.fail(err)
	}
	st.done("ingest healthy on %s", ingestAddr)

	st = d.p.step("start detect with the rule pack " + c.RulesDir)
	detectAddr, _ := freePort()
	if _, err := d.start(ctx, "detect", "http://"+detectAddr+"/healthz", d.env(),
		"detect", "run", "--rules", c.RulesDir, "--group", c.Prefix+"-detect",
		"--events-topic", topics.Events, "--approvals-topic", topics.Approvals,
		"--state-topic", c.Prefix+".detect.state", "--repartition-topic", c.Prefix+".detect.repartition",
		"--metrics", detectAddr); err != nil {
		return st.fail(err)
	}
	st.done("detect healthy on %s", detectAddr)

	st = d.p.step("start the approvals service")
	inbox := "http://" + c.ApproveListen + "/"
	if _, err := d.start(ctx, "approve", inbox+"healthz", d.env(),
		"approve", "serve", "--listen", c.ApproveListen, "--keys", creds.signer, "--approvers", creds.approvers,
		"--approvals-topic", topics.Approvals, "--events-topic", topics.Events, "--alert-window", "10m",
		"--create-topics"); err != nil {
		return st.fail(err)
	}
	if d.approver, err = approvals.NewClient(inbox, creds.token); err != nil {
		return st.fail(err)
	}
	if _, err := d.approver.Me(ctx); err != nil {
		return st.fail(fmt.Errorf("the approver's token is refused: %w", err))
	}
	d.res.InboxURL = inbox
	st.done("inbox %s", inbox)
	d.p.line("approver %q token: %s", approverID, creds.token)
	d.p.line("  (also in %s; e.g. APPROVE_URL=%s APPROVE_TOKEN=… bin/approve list)", filepath.Join(c.Dir, "approver.token"), strings.TrimSuffix(inbox, "/"))

	// 2. The agent's session.
	runnerID := fmt.Sprintf("demo-%d", time.Now().UnixNano())
	d.res.RunnerID = runnerID
	w, err := newWatcher(ctx, brokers, []string{topics.Events, topics.Approvals}, runnerID)
	if err != nil {
		return fmt.Errorf("follow the topics: %w", err)
	}
	defer w.close()
	st = d.p.step("start the agent's session: runner serve --mcp http (sandbox, egress proxy)")
	approvalTimeout := 5 * time.Minute
	if c.Interactive {
		approvalTimeout = 15 * time.Minute
	}
	runnerEnv := d.env("RUNNER_ID="+runnerID, "RUNNER_TENANT=demo", "RUNNER_OPERATOR=demo",
		"APPROVAL_KEYS="+creds.keySet, "APPROVAL_TIMEOUT="+approvalTimeout.String(),
		"SPOOL_DIR="+filepath.Join(c.Dir, "spool"),
		"AUDIT_TOPIC_EVENTS="+topics.Events, "AUDIT_TOPIC_APPROVALS="+topics.Approvals, "AUDIT_TOPIC_DLQ="+topics.DLQ,
		"SANDBOX_SUPERVISOR="+filepath.Join(c.BinDir, "sandbox-supervisor"),
		"SANDBOX_SOCKET_ROOT="+filepath.Join(c.Dir, "sockets"))
	runnerAddr, err := freePort()
	if err != nil {
		return st.fail(err)
	}
	runner, err := d.start(ctx, "runner", "tcp://"+runnerAddr, runnerEnv, "runner", "serve", "--mcp", "http",
		"--listen", runnerAddr, "--workspace", ws, "--egress-policy", egressPolicy, "--log-level", "info")
	if err != nil {
		return st.fail(err)
	}
	a, err := d.connectAgent(ctx, "http://"+runnerAddr+"/")
	if err != nil {
		return st.fail(err)
	}
	agentOpen := true
	defer func() {
		if agentOpen {
			a.close()
		}
	}()
	tools, err := a.cs.ListTools(ctx, nil)
	if err != nil {
		return st.fail(fmt.Errorf("tools/list: %w", err))
	}
	var names []string
	for _, t := range tools.Tools {
		names = append(names, t.Name)
	}
	d.p.line("tools: %s", strings.Join(names, ", "))
	// The session (its sandbox) starts with the first call.
	if o, err := a.call(ctx, "list_files", map[string]any{}); err != nil {
		return st.fail(err)
	} else if o.Denied {
		return st.fail(errStep("the session did not start: %s; runner log %s ends:\n%s", o.Text, a.log, tail(a.log, 15)))
	}
	if !w.wait(ctx, c.StepTimeout, func(s string, _ map[string]int) bool { return s != "" }) {
		return st.fail(fmt.Errorf("%w: no session.started from runner %s within %s; runner log %s ends:\n%s",
			ErrStep, runnerID, c.StepTimeout, a.log, tail(a.log, 15)))
	}
	d.res.SessionID, _ = w.snapshot()
	st.done("session %s", d.res.SessionID)

	if err := d.session(ctx, a, ts); err != nil {
		return err
	}

	st = d.p.step("end the session")
	agentOpen = false
	if err := a.close(); err != nil {
		d.p.line("runner exit: %v", err)
	}
	if !w.wait(ctx, c.StepTimeout, func(_ string, n map[string]int) bool { return n[events.TypeSessionEnded] > 0 }) {
		return st.fail(fmt.Errorf("%w: no session.ended within %s", ErrStep, c.StepTimeout))
	}
	_, d.res.Produced = w.snapshot()
	runner.stop(30 * time.Second)
	st.done("session.ended; %d events of the session on Kafka", total(d.res.Produced))

	// 3. The record.
	if err := d.record(ctx, periodFrom); err != nil {
		return err
	}

	// 4. A real agent CLI in the sandbox, its own tools governed.
	if c.Agent != "" {
		return d.realAgent(ctx, ts, d.env("RUNNER_TENANT=demo", "RUNNER_OPERATOR=demo",
			"APPROVAL_KEYS="+creds.keySet, "APPROVAL_TIMEOUT="+approvalTimeout.String(),
			"SPOOL_DIR="+filepath.Join(c.Dir, "spool-agent"),
			"AUDIT_TOPIC_EVENTS="+topics.Events, "AUDIT_TOPIC_APPROVALS="+topics.Approvals, "AUDIT_TOPIC_DLQ="+topics.DLQ,
			"SANDBOX_SUPERVISOR="+filepath.Join(c.BinDir, "sandbox-supervisor"),
			"SANDBOX_SOCKET_ROOT="+filepath.Join(c.Dir, "sockets")), egressPolicy)
	}
	return nil
}

func total(m map[string]int) int {
	n := 0
	for _, v := range m {
		n += v
	}
	return n
}

func ensureTopics(ctx context.Context, brokers []string, t eventlog.Topics) error {
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...))
	if err != nil {
		return err
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	return eventlog.EnsureTopics(ctx, cl, t, -1, -1)
}

// errStep is a step whose outcome was wrong.
func errStep(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrStep, fmt.Sprintf(format, args...))
}
