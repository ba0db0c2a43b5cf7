package runner

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"golang.org/x/sys/unix"

	"github.com/agentaudit/agentaudit/internal/agenttest"
	"github.com/agentaudit/agentaudit/internal/events"
	"github.com/agentaudit/agentaudit/internal/hook"
	"github.com/agentaudit/agentaudit/internal/sandbox"
	"github.com/agentaudit/agentaudit/internal/staticbin"
	"github.com/agentaudit/agentaudit/internal/testenv"
)

// These tests run the real Codex and Claude Code CLIs (pinned in
// testenv/agents, installed by make test-deps) inside the sandbox with
// `runner agent`, against the real Kafka and Podman, driven by a scripted
// model on 127.0.0.1 that they reach only through the session's egress
// proxy.

// testAPIKey is the "real" key: the proxy adds it to model requests; the
// sandbox must never see it.
const testAPIKey = "sk-agentaudit-test-3f9c1d7e5b"

// agentsDir is the pinned install, from this package's directory.
func agentsDir(t *testing.T) string {
	t.Helper()
	dir, err := filepath.Abs("../../testenv/agents")
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{agentKinds[AgentCodex].pkgDir + "/" + agentKinds[AgentCodex].program,
		agentKinds[AgentClaude].pkgDir + "/" + agentKinds[AgentClaude].program} {
		if _, err := os.Stat(filepath.Join(dir, "node_modules", p)); err != nil {
			t.Fatalf("the pinned agent CLIs are not installed (%v): run make test-deps (npm ci --prefix testenv/agents)", err)
		}
	}
	return dir
}

var hookBinOnce struct {
	sync.Once
	path string
	err  error
}

// testHookBinary builds cmd/agent-hook once into a directory the Podman
// user can read.
func testHookBinary(t testing.TB) string {
	t.Helper()
	hookBinOnce.Do(func() {
		root, err := testenv.Root()
		if err != nil {
			hookBinOnce.err = err
			return
		}
		dir, err := os.MkdirTemp("", "agentaudit-agent-hook-")
		if err == nil {
			err = os.Chmod(dir, 0o755)
		}
		if err != nil {
			hookBinOnce.err = err
			return
		}
		hookBinOnce.path = filepath.Join(dir, "agent-hook")
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
		defer cancel()
		hookBinOnce.err = staticbin.Build(ctx, root, "./cmd/agent-hook", hookBinOnce.path)
	})
	if hookBinOnce.err != nil {
		t.Fatalf("agent-hook: %v", hookBinOnce.err)
	}
	return hookBinOnce.path
}

// agentRig is one `runner agent` run against the scripted model.
type agentRig struct {
	e       *itEnv
	model   *agenttest.Server
	ws      string
	agent   string
	policy  string // tool-call policy file, "" for the default
	session chan *Session
	done    chan struct{}
	code    int
	err     error
	out     *os.File
	errOut  *os.File
	s       *Session
	hookBin string // the agent-hook mounted into this sandbox
	// log is everything the runner logged for the run, debug included,
	// which a test may search (the API key must not be in it).
	log *syncBuffer
}

// syncBuffer is a bytes.Buffer safe for concurrent writes.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (w *syncBuffer) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.Write(p)
}

func (w *syncBuffer) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.String()
}

// agentPolicy is the test's tool-call policy: the shipped rules plus
// rules the cases below exercise.
const agentPolicy = `id: agent-it
version: "1"
approval_mode: on-request
rules:
  - id: no-rm-secret
    prefix: [rm, secret.txt]
    decision: deny
    justification: secret.txt is kept
  - id: ask-touch
    prefix: [touch, [approved.txt, refused.txt, killed.txt]]
    decision: ask
    justification: a human decides on these files
  - id: protected-path-writes
    write: true
    paths: [".git/hooks/**", ".env", ".env.*"]
    decision: ask
    reason: protected_path
    justification: hooks run later; .env holds secrets
  - id: file-reads
    tool: [read_file, list_files, search_files]
    write: false
    decision: allow
    justification: reading the workspace
  - id: file-writes
    tool: [write_file, edit_file]
    decision: allow
    justification: editing the workspace
  - id: sandboxed-shell
    tool: shell
    decision: allow
    justification: ordinary commands run in the sandbox
`

// startAgent runs agent with the script in a fresh session; args are the
// agent CLI's arguments.
func startAgent(t *testing.T, agent string, steps []agenttest.Step, args ...string) *agentRig {
	t.Helper()
	return startAgentIO(t, agent, steps, nil, args...)
}

// startAgentIO is startAgent with the agent's stdin, stdout and stderr
// (nil: /dev/null and files).
func startAgentIO(t *testing.T, agent string, steps []agenttest.Step, stdio []*os.File, args ...string) *agentRig {
	t.Helper()
	return startAgentRig(t, agent, steps, stdio, nil, args...)
}

// startAgentRig is startAgentIO with prepare, when set, run on the
// workspace before the agent starts (its files then go to the sandbox
// user).
func startAgentRig(t *testing.T, agent string, steps []agenttest.Step, stdio []*os.File, prepare func(ws string), args ...string) *agentRig {
	t.Helper()
	model, err := agenttest.Start(steps...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { model.Close() })
	port := model.Addr()[strings.LastIndexByte(model.Addr(), ':')+1:]
	dir := t.TempDir()
	egressFile := filepath.Join(dir, "egress.yaml")
	pol := fmt.Sprintf(`id: agent-it-egress
default: deny
rules:
  - id: scripted-model
    decision: allow
    cidrs: ["127.0.0.1/32"]
    ports: [%s]
`, port)
	if err := os.WriteFile(egressFile, []byte(pol), 0o644); err != nil {
		t.Fatal(err)
	}
	policyFile := filepath.Join(dir, "policy.yaml")
	if err := os.WriteFile(policyFile, []byte(agentPolicy), 0o644); err != nil {
		t.Fatal(err)
	}
	socketRoot := filepath.Join(searchableDir(t, "agentaudit-agent-egress-", 0o711), "egress")
	e := newITEnvWith(t, 30*time.Second, func(c *Config) {
		c.EgressPolicy, c.EgressSocketRoot, c.PolicyFile = egressFile, socketRoot, policyFile
		c.EgressResolver = stubResolver{"denied.test.": "127.0.0.1"}
		c.AckTimeout = 10 * time.Second
	})
	g := &agentRig{e: e, model: model, ws: itWorkspace(t), agent: agent, session: make(chan *Session, 1), done: make(chan struct{})}
	if prepare != nil {
		prepare(g.ws)
		uid, _ := strconv.Atoi(testenv.Get(t, "PODMAN_UID"))
		if err := sandbox.PrepareWorkspace(g.ws, uid, uid); err != nil {
			t.Fatal(err)
		}
	}
	if g.out, err = os.CreateTemp(dir, "stdout-"); err != nil {
		t.Fatal(err)
	}
	if g.errOut, err = os.CreateTemp(dir, "stderr-"); err != nil {
		t.Fatal(err)
	}
	stdin, err := os.Open(os.DevNull)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { stdin.Close() })
	modelURL := "http://" + model.Addr()
	if agent == AgentCodex {
		modelURL += "/v1"
	}
	no := false
	// A copy of its own, which a test may replace under the agent.
	hookDir, err := os.MkdirTemp("", "agentaudit-hook-copy-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(hookDir) })
	os.Chmod(hookDir, 0o755)
	bin, err := os.ReadFile(testHookBinary(t))
	if err != nil {
		t.Fatal(err)
	}
	g.hookBin = filepath.Join(hookDir, "agent-hook")
	if err := os.WriteFile(g.hookBin, bin, 0o755); err != nil {
		t.Fatal(err)
	}
	ao := AgentOptions{Agent: agent, Args: args, AgentsDir: agentsDir(t), HookBinary: g.hookBin,
		ModelURL: modelURL, APIKey: testAPIKey, ModelTLS: &no, HookTimeout: 45 * time.Second,
		Timeout: 5 * time.Minute, Stdin: stdin, Stdout: g.out, Stderr: g.errOut,
		Started: func(s *Session) { g.session <- s }}
	if stdio != nil {
		ao.Stdin, ao.Stdout, ao.Stderr = stdio[0], stdio[1], stdio[2]
	}
	cfg := e.cfg
	cfg.Workspace = g.ws
	g.log = &syncBuffer{}
	cfg.Logger = slog.New(slog.NewMultiHandler(cfg.Logger.Handler(),
		slog.NewTextHandler(g.log, &slog.HandlerOptions{Level: slog.LevelDebug})))
	// runner agent is a runner of its own beside the test's: its own id.
	cfg.RunnerID += "-agent"
	go func() {
		defer close(g.done)
		g.code, g.err = RunAgent(context.Background(), cfg, ao)
	}()
	select {
	case g.s = <-g.session:
	case <-g.done:
		t.Fatalf("runner agent ended before its session started: %v\nstderr:\n%s", g.err, g.stderr())
	case <-time.After(2 * time.Minute):
		t.Fatal("no session after 2 minutes")
	}
	return g
}

// wait waits for the agent to exit and returns its exit code.
func (g *agentRig) wait(t *testing.T) int {
	t.Helper()
	select {
	case <-g.done:
	case <-time.After(4 * time.Minute):
		t.Fatalf("the agent did not exit\nstderr:\n%s", g.stderr())
	}
	if g.err != nil {
		t.Fatalf("runner agent: %v\nstderr:\n%s", g.err, g.stderr())
	}
	return g.code
}

func (g *agentRig) stdout() string { b, _ := os.ReadFile(g.out.Name()); return string(b) }
func (g *agentRig) stderr() string { b, _ := os.ReadFile(g.errOut.Name()); return string(b) }

// events returns the session's events, up to session.ended.
func (g *agentRig) events(t *testing.T) []*events.Envelope {
	t.Helper()
	return readSession(t, g.e.brokers, g.e.topics.Events, g.s.ID())
}

// shellStep is a step that runs cmd with the agent's own shell tool.
func shellStep(agent, cmd string) agenttest.Step {
	if agent == AgentCodex {
		return agenttest.Step{Tool: "exec_command", Input: map[string]any{"cmd": cmd}}
	}
	return agenttest.Step{Tool: "Bash", Input: map[string]any{"command": cmd, "description": "scripted"}}
}

// agentArgs are the CLI arguments for a non-interactive run.
func agentArgs(agent string) []string {
	if agent == AgentCodex {
		return []string{"-c", "model_providers.agentaudit.request_max_retries=0", "-c", "model_providers.agentaudit.stream_max_retries=0",
			"-m", "gpt-5.5", "exec", "--skip-git-repo-check", "do the scripted task"}
	}
	// Claude Code's own permission checks off, as when a person lets it
	// run unattended: the runner is the only check, and a hook that fails
	// open would let a tool run.
	return []string{"-p", "do the scripted task", "--output-format", "stream-json", "--verbose", "--permission-mode", "bypassPermissions"}
}

// hookTrail is what the session's events say about each tool call: its
// tool name and its decisions, in order.
type hookTrail struct {
	Tool      string
	Decisions []string // decision/reason
	Completed bool
}

func trailOf(evs []*events.Envelope) map[string]*hookTrail {
	out := map[string]*hookTrail{}
	for _, ev := range evs {
		if ev.ToolCallID == "" {
			continue
		}
		p, err := ev.DecodePayload()
		if err != nil {
			continue
		}
		tr := out[ev.ToolCallID]
		if tr == nil {
			tr = &hookTrail{}
			out[ev.ToolCallID] = tr
		}
		switch pl := p.(type) {
		case *events.ToolCallRequested:
			tr.Tool = pl.ToolName
		case *events.PolicyDecision:
			tr.Decisions = append(tr.Decisions, string(pl.Decision)+"/"+string(pl.ReasonCode))
		case *events.ToolCallCompleted:
			tr.Completed = true
		}
	}
	return out
}

// writeStep is the agent's own file-write tool writing content to rel.
func writeStep(agent, rel, content string) agenttest.Step {
	if agent == AgentCodex {
		patch := "*** Begin Patch\n*** Add File: " + rel + "\n+" + content + "\n*** End Patch\n"
		return agenttest.Step{Tool: "apply_patch", Custom: true, Input: map[string]any{"input": patch}}
	}
	return agenttest.Step{Tool: "Write", Input: map[string]any{"file_path": SandboxWorkspace + "/" + rel, "content": content}}
}

// TestAgentHooks runs each real agent CLI in the sandbox through one
// scripted session and checks what its own tools could do, what the model
// was told and what the audit trail says:
//
//   - an allowed shell call runs inside the container (the file belongs to
//     the sandbox user, the hostname is the sandbox's);
//   - a denied one never runs, and the model gets the reason;
//   - an ask approved through a signed decision runs, a refused one does not;
//   - the agent's own file-write tool on a protected path asks;
//   - the agent's own curl to a host the egress policy denies gets 403;
//   - the model API key never reaches the sandbox: the proxy adds it;
//   - with the runner's hook socket gone, the next tool does not run.
func TestAgentHooks(t *testing.T) {
	for _, agent := range []string{AgentClaude, AgentCodex} {
		t.Run(agent, func(t *testing.T) { testAgentHooks(t, agent) })
	}
}

func testAgentHooks(t *testing.T, agent string) {
	var g *agentRig
	stopHooks := func() { g.s.hooks.stop() }
	// The hook binary replaced, in place, by one that answers nothing and
	// exits 0: both agents then run the tool without asking the runner.
	failOpen := func() {
		if err := os.WriteFile(g.hookBin, []byte("#!/bin/sh\nexit 0\n"), 0o755); err != nil {
			t.Errorf("replace the hook binary: %v", err)
		}
	}
	steps := []agenttest.Step{
		shellStep(agent, "echo kept > secret.txt; id -u > who.txt; hostname >> who.txt"),
		shellStep(agent, "rm secret.txt"),
		shellStep(agent, "touch approved.txt"),
		shellStep(agent, "touch refused.txt"),
		writeStep(agent, ".env", "TOKEN=stolen"),
		shellStep(agent, "curl -s -o /dev/null -w 'status=%{http_code}' --max-time 10 http://denied.test:80/x"),
		// The key in no process's environment or argv (the pattern is
		// written so that grep's own argv does not match it).
		shellStep(agent, "echo keyhits=$(cat /proc/[0-9]*/environ /proc/[0-9]*/cmdline 2>/dev/null | tr '\\0' '\\n' | grep -c "+testAPIKey[:len(testAPIKey)-4]+"["+testAPIKey[len(testAPIKey)-4:len(testAPIKey)-3]+"]"+testAPIKey[len(testAPIKey)-3:]+")"),
		{Tool: shellStep(agent, "").Tool, Input: shellStep(agent, "touch after-hooks-gone.txt").Input, Before: stopHooks},
		{Tool: shellStep(agent, "").Tool, Input: shellStep(agent, "touch hook-failed-open.txt").Input, Before: failOpen},
	}
	g = startAgent(t, agent, steps, agentArgs(agent)...)
	sid := g.s.ID()
	// Only the sandbox's processes are answered: this test, on the host,
	// is not.
	pctx, pcancel := context.WithTimeout(context.Background(), 5*time.Second)
	resp, err := hook.Call(pctx, g.s.hooks.socket, hook.Request{Agent: agent, Event: "PreToolUse",
		Input: []byte(`{"hook_event_name":"PreToolUse","tool_name":"Bash","tool_input":{"command":"true"},"tool_use_id":"host"}`)})
	pcancel()
	if err == nil {
		t.Errorf("a process outside the sandbox got an answer on the hook socket: %+v", resp)
	}
	// The two asks and the protected write, answered in order.
	answer := func(n int, outcome events.ApprovalOutcome, wantReason events.ReasonCode) {
		t.Helper()
		req := g.e.requests.next(t, sid, n)
		p, _ := req.DecodePayload()
		if ar := p.(*events.ApprovalRequested); ar.ReasonCode != wantReason {
			t.Errorf("approval %d: reason %s, want %s (%s)", n, ar.ReasonCode, wantReason, ar.Summary)
		}
		g.e.answer(t, g.e.signer, req, outcome, events.ScopeOnce)
	}
	answer(0, events.ApprovalApproved, events.ReasonNeedsApproval)
	answer(1, events.ApprovalDenied, events.ReasonNeedsApproval)
	answer(2, events.ApprovalDenied, events.ReasonProtectedPath)
	code := g.wait(t)
	if code != 0 {
		t.Errorf("agent exit code %d\nstdout:\n%s\nstderr:\n%s", code, g.stdout(), g.stderr())
	}

	// What ran, and as whom.
	b, err := os.ReadFile(filepath.Join(g.ws, "who.txt"))
	if err != nil || string(b) != testenv.Get(t, "PODMAN_UID")+"\nsandbox\n" {
		t.Errorf("who.txt: %q %v; want the sandbox user's uid and the sandbox's hostname", b, err)
	}
	if fi, err := os.Stat(filepath.Join(g.ws, "who.txt")); err == nil {
		if uid := fmt.Sprint(fi.Sys().(*syscall.Stat_t).Uid); uid != testenv.Get(t, "PODMAN_UID") {
			t.Errorf("who.txt owned by %s, want the sandbox user %s", uid, testenv.Get(t, "PODMAN_UID"))
		}
	}
	for name, want := range map[string]bool{"secret.txt": true, "approved.txt": true, "refused.txt": false, "after-hooks-gone.txt": false,
		"hook-failed-open.txt": false} {
		if got := exists(g.ws, name); got != want {
			t.Errorf("%s exists: %v, want %v", name, got, want)
		}
	}
	if b, _ := os.ReadFile(filepath.Join(g.ws, ".env")); strings.Contains(string(b), "stolen") {
		t.Errorf(".env was written: %q", b)
	}

	// What the model was told, tool by tool.
	results := g.model.Results()
	if len(results) != len(steps) {
		for _, r := range results {
			t.Logf("result %s: %q", r.CallID, r.Output)
		}
		t.Fatalf("%d tool results reached the model, want %d\nstdout:\n%s\nstderr:\n%s", len(results), len(steps), g.stdout(), g.stderr())
	}
	wantIn := []string{"", "denied_by_rule", "", "approval_denied", "protected-path-writes", "status=403", "keyhits=0", "policy check failed", ""}
	for i, w := range wantIn {
		if w != "" && !strings.Contains(results[i].Output, w) {
			t.Errorf("tool result %d (%s): %q, want it to say %q", i, results[i].CallID, results[i].Output, w)
		}
		if strings.Contains(results[i].Output, testAPIKey) {
			t.Errorf("tool result %d shows the API key", i)
		}
	}
	// The key reached the model server, added by the proxy; the agent
	// sent the placeholder.
	for _, r := range g.model.Requests() {
		if !strings.Contains(r.Auth, testAPIKey) {
			t.Errorf("model request %s carried %q, want the real key", r.Path, r.Auth)
		}
	}

	// What the audit trail says.
	evs := g.events(t)
	chain := append(append([]*events.Envelope(nil), evs...), g.e.requests.all(sid)...)
	if err := events.VerifyChain(chain, events.AnyOrder()); err != nil {
		t.Errorf("chain: %v", err)
	}
	for _, ev := range chain {
		raw, _ := events.Marshal(ev)
		if strings.Contains(string(raw), testAPIKey) {
			t.Errorf("event %s %s carries the API key", ev.EventType, ev.EventID)
		}
	}
	// Nor in the runner's log, debug included, nor in what the agent
	// printed.
	if g.log.String() == "" {
		t.Error("the runner logged nothing: the log was not searched for the key")
	}
	for name, text := range map[string]string{"the runner's log": g.log.String(), "the agent's stdout": g.stdout(), "the agent's stderr": g.stderr()} {
		if strings.Contains(text, testAPIKey) {
			t.Errorf("%s shows the API key", name)
		}
	}
	// The tool whose hook failed open was refused at exec.
	refused := false
	for _, ev := range evs {
		if p, _ := ev.DecodePayload(); p != nil {
			if pe, ok := p.(*events.ProcessExec); ok && pe.Decision == events.DecisionDeny &&
				pe.ReasonCode == events.ReasonDefaultDeny && strings.Contains(strings.Join(pe.Argv, " "), "hook-failed-open.txt") {
				refused = true
			}
		}
	}
	if !refused || exists(g.ws, "hook-failed-open.txt") {
		t.Error("the shell tool whose hook failed open was not refused at exec")
		for _, ev := range evs {
			if p, _ := ev.DecodePayload(); p != nil {
				if pe, ok := p.(*events.ProcessExec); ok {
					t.Logf("exec pid %d ppid %d %s %s %q", pe.PID, pe.PPID, pe.Decision, pe.ReasonCode, pe.Argv)
				}
			}
		}
	}
	trail := trailOf(evs)
	var got []string
	for _, r := range results[:len(steps)-2] {
		tr := trail[r.CallID]
		if tr == nil {
			t.Errorf("no events for tool call %s", r.CallID)
			continue
		}
		got = append(got, fmt.Sprintf("%s %s completed=%v", tr.Tool, strings.Join(tr.Decisions, ","), tr.Completed))
	}
	write := "write"
	if agent == AgentCodex {
		write = "apply_patch"
	}
	want := []string{
		"bash allow/allowlisted completed=true",
		"bash deny/denied_by_rule completed=false",
		"bash ask/needs_approval,allow/approved completed=true",
		"bash ask/needs_approval,deny/approval_denied completed=false",
		write + " ask/protected_path,deny/approval_denied completed=false",
		"bash allow/allowlisted completed=true",
		"bash allow/allowlisted completed=true",
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("tool calls in the audit trail (-want +got):\n%s", diff)
	}
	if t.Failed() {
		t.Logf("stdout:\n%s\nstderr:\n%s", g.stdout(), g.stderr())
	}
}

// TestAgentTerminal: a terminal passes through. The agent's stdin, stdout
// and stderr are the runner's terminal (here a pseudo-terminal the test
// holds), its output reaches it, and the terminal's modes are as they were
// afterwards.
func TestAgentTerminal(t *testing.T) {
	for _, agent := range []string{AgentClaude, AgentCodex} {
		t.Run(agent, func(t *testing.T) { testAgentTerminal(t, agent) })
	}
}

func testAgentTerminal(t *testing.T, agent string) {
	master, slave := openPTY(t)
	before, err := unix.IoctlGetTermios(int(slave.Fd()), unix.TCGETS)
	if err != nil {
		t.Fatal(err)
	}
	var out strings.Builder
	var omu sync.Mutex
	go func() {
		buf := make([]byte, 4096)
		for {
			n, err := master.Read(buf)
			omu.Lock()
			out.Write(buf[:n])
			omu.Unlock()
			if err != nil {
				return
			}
		}
	}()
	steps := []agenttest.Step{shellStep(agent, "readlink /proc/$PPID/fd/0 /proc/$PPID/fd/1")}
	args := []string{"-p", "do the scripted task"}
	if agent == AgentCodex {
		args = agentArgs(agent)
	}
	g := startAgentIO(t, agent, steps, []*os.File{slave, slave, slave}, args...)
	if code := g.wait(t); code != 0 {
		t.Errorf("exit %d", code)
	}
	time.Sleep(200 * time.Millisecond)
	omu.Lock()
	got := out.String()
	omu.Unlock()
	if !strings.Contains(got, "All done.") {
		t.Errorf("the agent's answer did not reach the terminal: %q", got)
	}
	res := g.model.Results()
	t.Logf("the agent's stdin and stdout, as its shell sees them: %+v", res)
	if len(res) != 1 || strings.Count(res[0].Output, "pts") != 2 {
		t.Errorf("the agent's stdin and stdout are not the terminal: %+v", res)
	}
	after, err := unix.IoctlGetTermios(int(slave.Fd()), unix.TCGETS)
	if err != nil || *after != *before {
		t.Errorf("terminal modes changed: %+v → %+v (%v)", before, after, err)
	}
}

// TestAgentManagedHooksStay: neither the user's command line nor the
// project's own configuration switches the managed hooks off. A command
// the policy denies is still denied by its hook, and the model reads the
// rule (were the hooks off, the shell tool would only be refused at exec).
func TestAgentManagedHooksStay(t *testing.T) {
	for _, agent := range []string{AgentClaude, AgentCodex} {
		t.Run(agent, func(t *testing.T) {
			prepare := func(ws string) {
				files := map[string]string{"secret.txt": "kept\n"}
				if agent == AgentClaude {
					files[".claude/settings.json"] = `{"disableAllHooks": true, "hooks": {}}`
				} else {
					files[".codex/config.toml"] = "[features]\nhooks = false\n"
				}
				for rel, body := range files {
					p := filepath.Join(ws, rel)
					if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
						t.Fatal(err)
					}
					if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
						t.Fatal(err)
					}
				}
			}
			args := agentArgs(agent)
			if agent == AgentClaude {
				args = append(args, "--settings", `{"disableAllHooks": true}`)
			} else {
				args = append([]string{"-c", "features.hooks=false"}, args...)
			}
			g := startAgentRig(t, agent, []agenttest.Step{shellStep(agent, "rm secret.txt")}, nil, prepare, args...)
			if code := g.wait(t); code != 0 {
				t.Errorf("agent exit code %d\nstderr:\n%s", code, g.stderr())
			}
			if !exists(g.ws, "secret.txt") {
				t.Error("secret.txt was removed")
			}
			if res := g.model.Results(); len(res) != 1 || !strings.Contains(res[0].Output, "denied_by_rule") {
				t.Errorf("the model was told %+v; want the hook's denied_by_rule\nstdout:\n%s\nstderr:\n%s", res, g.stdout(), g.stderr())
			}
		})
	}
}

// TestAgentHookKilled: the hook process killed while it waits for a
// human lets neither agent run the tool. Both CLIs run a tool whose hook
// died; the shell tool's process is then refused at exec, because no
// PreToolUse the runner allowed covers its command.
func TestAgentHookKilled(t *testing.T) {
	for _, agent := range []string{AgentClaude, AgentCodex} {
		t.Run(agent, func(t *testing.T) {
			g := startAgent(t, agent, []agenttest.Step{shellStep(agent, "touch killed.txt")}, agentArgs(agent)...)
			g.e.requests.next(t, g.s.ID(), 0) // the hook now waits for the approval
			ns, err := os.Readlink(fmt.Sprintf("/proc/%d/ns/pid", g.s.sb.Info().InitPID))
			if err != nil {
				t.Fatal(err)
			}
			killed := 0
			procs, _ := filepath.Glob("/proc/[0-9]*")
			for _, p := range procs {
				cmd, _ := os.ReadFile(p + "/cmdline")
				if pns, _ := os.Readlink(p + "/ns/pid"); pns != ns || !bytes.HasPrefix(cmd, []byte(hook.ContainerBinary+"\x00hook\x00")) ||
					!bytes.Contains(cmd, []byte("\x00PreToolUse\x00")) {
					continue
				}
				pid, _ := strconv.Atoi(filepath.Base(p))
				if err := syscall.Kill(pid, syscall.SIGKILL); err == nil {
					killed++
				}
			}
			if killed != 1 {
				t.Fatalf("killed %d waiting PreToolUse hooks, want 1", killed)
			}
			if code := g.wait(t); code != 0 {
				t.Errorf("agent exit code %d\nstderr:\n%s", code, g.stderr())
			}
			if exists(g.ws, "killed.txt") {
				t.Error("the tool whose hook was killed ran")
			}
			refused := false
			for _, ev := range g.events(t) {
				if p, _ := ev.DecodePayload(); p != nil {
					if pe, ok := p.(*events.ProcessExec); ok && pe.Decision == events.DecisionDeny &&
						strings.Contains(strings.Join(pe.Argv, " "), "touch killed.txt") {
						refused = true
					}
				}
			}
			// Both CLIs fail open and start the tool: its exec is refused.
			res := g.model.Results()
			t.Logf("the model was told: %+v", res)
			if len(res) != 1 || !refused {
				t.Errorf("tool results %+v, exec refused %v; want one result and the exec refused", res, refused)
			}
		})
	}
}

// TestAgentExecStillChecked: a command the hook allowed is still checked
// at exec. The agent's shell runs a script of the workspace: the hook sees
// "./x.sh" and allows it; the rm inside is refused at exec by the rule
// that would have denied it as a tool call.
func TestAgentExecStillChecked(t *testing.T) {
	for _, agent := range []string{AgentClaude, AgentCodex} {
		t.Run(agent, func(t *testing.T) {
			prepare := func(ws string) {
				mustWrite(t, filepath.Join(ws, "secret.txt"), "kept\n")
				mustWrite(t, filepath.Join(ws, "x.sh"), "#!/bin/sh\nrm secret.txt\n")
				if err := os.Chmod(filepath.Join(ws, "x.sh"), 0o755); err != nil {
					t.Fatal(err)
				}
			}
			g := startAgentRig(t, agent, []agenttest.Step{shellStep(agent, "./x.sh")}, nil, prepare, agentArgs(agent)...)
			if code := g.wait(t); code != 0 {
				t.Errorf("agent exit code %d\nstderr:\n%s", code, g.stderr())
			}
			if !exists(g.ws, "secret.txt") {
				t.Error("secret.txt was removed")
			}
			evs := g.events(t)
			var hookVerdicts, execVerdicts []string
			for _, ev := range evs {
				p, _ := ev.DecodePayload()
				switch pl := p.(type) {
				case *events.PolicyDecision:
					if ev.ToolCallID != "" && strings.HasPrefix(ev.ToolCallID, "call-") {
						continue // the agent itself, started by the operator
					}
					hookVerdicts = append(hookVerdicts, string(pl.Decision)+"/"+string(pl.ReasonCode))
				case *events.ProcessExec:
					if strings.Join(pl.Argv, " ") == "rm secret.txt" {
						execVerdicts = append(execVerdicts, string(pl.Decision)+"/"+string(pl.ReasonCode)+" "+pl.RuleID)
					}
				}
			}
			if diff := cmp.Diff([]string{"allow/allowlisted"}, hookVerdicts); diff != "" {
				t.Errorf("the hook's decisions (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff([]string{"deny/denied_by_rule no-rm-secret"}, execVerdicts); diff != "" {
				t.Errorf("rm secret.txt at exec (-want +got):\n%s", diff)
			}
		})
	}
}

// TestAgentExitCode: the agent's exit code and its stderr pass through. A
// flag the CLI does not know makes it exit non-zero before it reaches the
// model; under runner agent the code is the one the same CLI gives when
// run on the host.
func TestAgentExitCode(t *testing.T) {
	for _, agent := range []string{AgentClaude, AgentCodex} {
		t.Run(agent, func(t *testing.T) {
			kind := agentKinds[agent]
			bin := filepath.Join(agentsDir(t), "node_modules", filepath.FromSlash(kind.pkgDir), filepath.FromSlash(kind.program))
			host := exec.Command(bin, "--no-such-flag")
			host.Env = []string{"HOME=" + t.TempDir(), "PATH=/usr/bin:/bin"}
			err := host.Run()
			var ee *exec.ExitError
			if !errors.As(err, &ee) || ee.ExitCode() <= 0 {
				t.Fatalf("%s --no-such-flag on the host: %v, want a non-zero exit", bin, err)
			}
			t.Logf("on the host: exit %d", ee.ExitCode())
			g := startAgent(t, agent, nil, "--no-such-flag")
			if code := g.wait(t); code != ee.ExitCode() {
				t.Errorf("runner agent exit code %d, want %d as on the host\nstderr:\n%s", code, ee.ExitCode(), g.stderr())
			}
			if !strings.Contains(g.stderr(), "no-such-flag") {
				t.Errorf("the agent's complaint did not reach the runner's stderr:\n%s", g.stderr())
			}
		})
	}
}

// openPTY opens a pseudo-terminal pair.
func openPTY(t *testing.T) (master, slave *os.File) {
	t.Helper()
	m, err := os.OpenFile("/dev/ptmx", os.O_RDWR|syscall.O_NOCTTY, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	if err := unix.IoctlSetPointerInt(int(m.Fd()), unix.TIOCSPTLCK, 0); err != nil {
		t.Fatal(err)
	}
	n, err := unix.IoctlGetInt(int(m.Fd()), unix.TIOCGPTN)
	if err != nil {
		t.Fatal(err)
	}
	s, err := os.OpenFile(fmt.Sprintf("/dev/pts/%d", n), os.O_RDWR|syscall.O_NOCTTY, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return m, s
}
