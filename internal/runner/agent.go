package runner

import (
	"context"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net/url"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/agentaudit/agentaudit/internal/events"
	"github.com/agentaudit/agentaudit/internal/hook"
	"github.com/agentaudit/agentaudit/internal/netpol"
	"github.com/agentaudit/agentaudit/internal/otlp"
	"github.com/agentaudit/agentaudit/internal/sandbox"
	"github.com/agentaudit/agentaudit/internal/staticbin"
)

//go:embed agents/*.yaml
var agentProfiles embed.FS

// Where the agent's files are in its sandbox.
const (
	containerAgentsDir = "/agentaudit/agents"
	codexRequirements  = "/etc/codex/requirements.toml"
	claudeManaged      = "/etc/claude-code/managed-settings.json"
)

// PlaceholderKey is the API key the agent sees: the egress proxy replaces
// it with the real one on the way out (netpol.Credential).
const PlaceholderKey = "agentaudit-placeholder-key"

// agentKind is what the runner knows of one agent CLI.
type agentKind struct {
	name string
	// pkgDir is the npm package directory holding the native binary,
	// under AgentsDir/node_modules; it is mounted read-only at
	// /agentaudit/agents/<name>.
	pkgDir  string
	program string // the binary, relative to pkgDir
	home    string // its configuration home on the sandbox's /tmp (the profile's env names it)
	// The model API: where the agent sends requests by default (plain
	// HTTP to the session proxy, which speaks TLS upstream), the variable
	// the key is read from on the host, and the header it travels in.
	defaultURL   string
	upstreamPort uint16
	keyEnv       string
	header       string
	headerPrefix string
}

var agentKinds = map[string]agentKind{
	AgentCodex: {
		name: AgentCodex, pkgDir: "@openai/codex-linux-x64/vendor/x86_64-unknown-linux-musl", program: "bin/codex", home: "/tmp/.codex",
		defaultURL: "http://api.openai.com/v1", upstreamPort: 443,
		keyEnv: "OPENAI_API_KEY", header: "Authorization", headerPrefix: "Bearer ",
	},
	AgentClaude: {
		name: AgentClaude, pkgDir: "@anthropic-ai/claude-code-linux-x64", program: "claude", home: "/tmp/.claude",
		defaultURL: "http://api.anthropic.com", upstreamPort: 443,
		keyEnv: "ANTHROPIC_API_KEY", header: "x-api-key",
	},
}

// AgentProfile returns the shipped sandbox profile of agent.
func AgentProfile(agent string) (*sandbox.Profile, error) {
	b, err := agentProfiles.ReadFile("agents/" + agent + ".yaml")
	if err != nil {
		return nil, fmt.Errorf("%w: --agent %q: want codex or claude", ErrConfig, agent)
	}
	return sandbox.ParseProfile(b)
}

// AgentOptions are `runner agent`'s settings beyond Config.
type AgentOptions struct {
	// Agent is AgentCodex or AgentClaude.
	Agent string
	// Args are the agent CLI's own arguments.
	Args []string
	// AgentsDir is the pinned npm install of the agents (testenv/agents:
	// package.json, package-lock.json and node_modules).
	AgentsDir string
	// HookBinary is cmd/agent-hook (static). Default: agent-hook next to
	// the runner binary, else built from this module's source.
	HookBinary string
	// ModelURL is the base URL the agent sends its model requests to,
	// through the session's egress proxy. Default: the agent's real API as
	// plain HTTP (http://api.openai.com/v1, http://api.anthropic.com): the
	// proxy adds the key and speaks TLS to port 443.
	ModelURL string
	// APIKey is the real key. It stays in the runner: the proxy adds it to
	// the requests for ModelURL's host; the agent holds a placeholder.
	APIKey string
	// ModelTLS says the proxy speaks TLS to the model host (default: when
	// ModelURL is the default).
	ModelTLS *bool
	// HookTimeout bounds one hook call, approval included (default the
	// approval timeout plus a minute); the agent's own hook time-out is
	// set beyond it so the hook binary always answers (and refuses) first.
	HookTimeout time.Duration
	// Timeout bounds the whole agent run (default the profile's maximum).
	Timeout time.Duration
	// Stdin, Stdout and Stderr are handed to the agent (os.Stdin, … by
	// default); a terminal stays a terminal.
	Stdin, Stdout, Stderr *os.File
	// Started, when set, is called with the session once the sandbox is up.
	Started func(*Session)
	// TelemetryText is how the agent's prompt, response and tool text is
	// kept in its telemetry events: store (secrets redacted), hash
	// (sha256 and length; the default) or drop. Token counts and costs
	// are always kept.
	TelemetryText string
}

// RunAgent is `runner agent`: it starts a session whose sandbox runs the
// agent CLI itself under the supervisor, with managed hooks that send each
// of its tool calls to this runner, and returns the agent's exit code.
func RunAgent(ctx context.Context, cfg Config, ao AgentOptions) (int, error) {
	kind, ok := agentKinds[ao.Agent]
	if !ok {
		return ExitError, fmt.Errorf("%w: --agent %q: want codex or claude", ErrConfig, ao.Agent)
	}
	if cfg.Workspace == "" {
		return ExitError, fmt.Errorf("%w: --workspace: required", ErrConfig)
	}
	if cfg.EgressPolicy == "" {
		return ExitError, fmt.Errorf("%w: --egress-policy: required: the agent reaches its model API only through the session's egress proxy (deploy/policies/agent-egress.yaml)", ErrConfig)
	}
	if ao.Stdin == nil {
		ao.Stdin = os.Stdin
	}
	if ao.Stdout == nil {
		ao.Stdout = os.Stdout
	}
	if ao.Stderr == nil {
		ao.Stderr = os.Stderr
	}
	agentsDir, err := findAgentsDir(ao.AgentsDir)
	if err != nil {
		return ExitError, err
	}
	pkg := filepath.Join(agentsDir, "node_modules", filepath.FromSlash(kind.pkgDir))
	if _, err := os.Stat(filepath.Join(pkg, filepath.FromSlash(kind.program))); err != nil {
		return ExitError, fmt.Errorf("%w: the %s CLI is not installed (%v): run `npm ci --prefix %s` (make test-deps)", ErrConfig, kind.name, err, agentsDir)
	}
	if cfg.Profile == nil && cfg.ProfileFile == "" {
		if cfg.Profile, err = AgentProfile(kind.name); err != nil {
			return ExitError, err
		}
	}
	if err := cfg.Validate(); err != nil {
		return ExitError, err
	}
	modelURL := orDefault(ao.ModelURL, kind.defaultURL)
	cred, err := agentCredential(kind, modelURL, ao)
	if err != nil {
		return ExitError, err
	}
	if cred != nil {
		cfg.EgressCredentials = append(cfg.EgressCredentials, *cred)
	}
	hookBin, err := findHookBinary(ctx, cfg, ao.HookBinary)
	if err != nil {
		return ExitError, fmt.Errorf("%w: agent-hook: %w", ErrConfig, err)
	}
	hookTimeout := ao.HookTimeout
	if hookTimeout <= 0 {
		hookTimeout = cfg.ApprovalTimeout + time.Minute
	}

	svc, err := Open(ctx, cfg)
	if err != nil {
		return ExitError, err
	}
	defer svc.Close(context.WithoutCancel(ctx))

	// The session's private directory: the hook socket, and the managed
	// configuration beside it.
	suffix := strconv.FormatInt(time.Now().UnixNano(), 36)
	hsrv, err := hook.Listen(filepath.Join(cfg.SocketRoot, "hooks-"+suffix), cfg.uid, cfg.gid, cfg.Logger)
	if err != nil {
		return ExitError, err
	}
	defer hsrv.Close()
	confDir := filepath.Join(cfg.SocketRoot, "agent-"+suffix)
	if err := os.Mkdir(confDir, 0o755); err != nil {
		return ExitError, err
	}
	defer os.RemoveAll(confDir)
	mounts := []Mount{
		{Source: hsrv.Dir(), Destination: hook.ContainerDir, ReadOnly: true},
		{Source: hookBin, Destination: hook.ContainerBinary, ReadOnly: true},
		{Source: pkg, Destination: containerAgentsDir + "/" + kind.name, ReadOnly: true},
	}
	managed, err := writeManagedConfig(kind.name, confDir, hookTimeout)
	if err != nil {
		return ExitError, err
	}
	mounts = append(mounts, managed)
	text, err := otlp.ParseTextMode(orDefault(ao.TelemetryText, string(otlp.TextHash)))
	if err != nil {
		return ExitError, fmt.Errorf("%w: --telemetry-text: %w", ErrConfig, err)
	}
	otlpLn, err := hsrv.ListenExtra(hook.OTLPSocketName, cfg.uid, cfg.gid)
	if err != nil {
		return ExitError, err
	}
	defer otlpLn.Close()

	s, err := svc.OpenSession(ctx, SessionOptions{
		Workspace: cfg.Workspace, Mode: "agent", Agent: kind.name, Mounts: mounts, OTLPSocket: otlpMount,
		Client: &events.ClientInfo{Name: agentClientName(kind.name), Version: agentVersion(kind.name)},
	})
	if err != nil {
		return ExitError, err
	}
	if err := hsrv.SetPeer(s.sb.Info().InitPID); err != nil {
		s.Close(context.WithoutCancel(ctx), events.EndError)
		return ExitError, err
	}
	tty := isTerminal(ao.Stdin)
	if tty {
		// The agent puts the terminal in raw mode; whatever ends it, the
		// person gets their terminal back as it was.
		if saved, err := unix.IoctlGetTermios(int(ao.Stdin.Fd()), unix.TCGETS); err == nil {
			defer unix.IoctlSetTermios(int(ao.Stdin.Fd()), unix.TCSETS, saved)
		}
	}
	hsrv.SetStdio([]*os.File{ao.Stdin, ao.Stdout, ao.Stderr}, tty)
	hsrv.Serve(s)
	tel := s.serveTelemetry(otlpLn, text)
	s.hooks.stop, s.hooks.socket = func() { hsrv.Close() }, filepath.Join(hsrv.Dir(), hook.SocketName)
	if ao.Started != nil {
		ao.Started(s)
	}
	code, runErr := s.runAgent(ctx, kind, agentArgv(kind, modelURL, ao.Args), agentEnv(kind, modelURL, ao.Stdin), ao.Timeout)
	reason := events.EndCompleted
	if runErr != nil {
		reason = events.EndError
	}
	// The agent's last exports arrive as it exits: they are recorded
	// before session.ended.
	tel.close(context.WithoutCancel(ctx), s)
	cerr := s.Close(context.WithoutCancel(ctx), reason)
	if runErr != nil {
		return ExitError, runErr
	}
	if cerr != nil {
		cfg.Logger.Warn("closing the agent's sandbox", "err", cerr)
	}
	return code, nil
}

func agentClientName(agent string) string {
	if agent == AgentClaude {
		return "claude-code"
	}
	return "codex"
}

// agentVersion is the pinned version (AGENT-CLIS.md, testenv/agents).
func agentVersion(agent string) string {
	if agent == AgentClaude {
		return "2.1.197"
	}
	return "0.169.1"
}

// agentCredential is the proxy's credential for the model host, when a
// key was given.
func agentCredential(kind agentKind, modelURL string, ao AgentOptions) (*netpol.Credential, error) {
	u, err := url.Parse(modelURL)
	if err != nil || u.Host == "" || u.Scheme != "http" {
		return nil, fmt.Errorf("%w: --model-url %q: want an http:// URL (the proxy speaks TLS upstream)", ErrConfig, modelURL)
	}
	if ao.APIKey == "" {
		return nil, nil
	}
	port := uint16(80)
	if p := u.Port(); p != "" {
		n, err := strconv.ParseUint(p, 10, 16)
		if err != nil {
			return nil, fmt.Errorf("%w: --model-url %q: port: %v", ErrConfig, modelURL, err)
		}
		port = uint16(n)
	}
	tlsUp := modelURL == kind.defaultURL
	if ao.ModelTLS != nil {
		tlsUp = *ao.ModelTLS
	}
	c := &netpol.Credential{Host: u.Hostname(), Port: port, Header: kind.header, Value: kind.headerPrefix + ao.APIKey}
	if tlsUp {
		c.UpstreamTLS, c.UpstreamPort = true, kind.upstreamPort
	}
	return c, nil
}

// agentArgv is the sandbox call: agent-hook attach hands the runner's
// stdio to the agent and becomes it.
func agentArgv(kind agentKind, modelURL string, args []string) []string {
	argv := []string{hook.ContainerBinary, "attach", "--mkdir", kind.home, "--", containerAgentsDir + "/" + kind.name + "/" + kind.program}
	if kind.name == AgentCodex {
		// The container is the sandbox (Codex's own needs bubblewrap);
		// the runner is the approver; the model is reached through the
		// proxy with a placeholder key.
		argv = append(argv,
			"-c", `sandbox_mode="danger-full-access"`,
			"-c", `approval_policy="never"`,
			// Its shell snapshot is a script the exec policy cannot judge
			// (every first shell call would wait for a human), and its
			// plugin and app sync reach hosts the agent's work does not need.
			"-c", "features.shell_snapshot=false", "-c", "features.plugins=false", "-c", "features.apps=false",
			"-c", `model_provider="agentaudit"`,
			"-c", fmt.Sprintf(`model_providers.agentaudit={name="agentaudit", base_url=%s, wire_api="responses", env_key="OPENAI_API_KEY"}`, tomlString(modelURL)),
		)
		argv = append(argv, agentTelemetryArgs(kind.name)...)
	}
	return append(argv, args...)
}

func agentEnv(kind agentKind, modelURL string, stdin *os.File) map[string]string {
	env := map[string]string{}
	switch kind.name {
	case AgentCodex:
		env["OPENAI_API_KEY"] = PlaceholderKey
	case AgentClaude:
		env["ANTHROPIC_API_KEY"] = PlaceholderKey
		env["ANTHROPIC_BASE_URL"] = modelURL
	}
	if isTerminal(stdin) {
		env["TERM"] = orDefault(os.Getenv("TERM"), "xterm-256color")
	}
	agentTelemetryEnv(kind.name, env)
	return env
}

func tomlString(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}

func isTerminal(f *os.File) bool {
	if f == nil {
		return false
	}
	_, err := unix.IoctlGetTermios(int(f.Fd()), unix.TCGETS)
	return err == nil
}

// runAgent runs the agent as one call of the session: recorded like a
// tool call the operator made, every program of its tree checked at exec.
func (s *Session) runAgent(ctx context.Context, kind agentKind, argv []string, env map[string]string, timeout time.Duration) (int, error) {
	if !s.enter() {
		return ExitError, ErrSessionClosed
	}
	defer s.calls.Done()
	ctx, cancel := s.callContext(ctx)
	defer cancel()
	callID := "call-" + s.r.newID()
	c := Call{Tool: "agent", Argv: argv, Raw: rawArgv(argv)}
	args, truncated := auditArguments(c)
	sum := sha256.Sum256(c.Raw)
	for k := range env {
		args.EnvKeys = append(args.EnvKeys, k)
	}
	sort.Strings(args.EnvKeys)
	reqEnv, err := s.envelope(events.ToolCallRequested{ToolName: "agent", Arguments: args,
		ArgumentsSHA256: hex.EncodeToString(sum[:]), ArgumentsTruncated: truncated}, events.WithToolCall(callID))
	if err != nil {
		return ExitError, err
	}
	s.count(func(n *events.SessionCounts) { n.ToolCalls++ })
	if err := s.r.emit.Emit(ctx, reqEnv); err != nil {
		return ExitError, s.unavailable(ctx, callID, reqEnv.EventID, err)
	}
	decEnv, err := s.decision(ctx, callID, reqEnv.EventID, "allow", events.ReasonAllowlisted, events.ApprovalModeNone, "",
		fmt.Sprintf("the operator started %s (runner agent); its tools are decided through its hooks and every program it starts at exec", kind.name), 0)
	if err != nil {
		return ExitError, s.unavailable(ctx, callID, reqEnv.EventID, err)
	}
	cs := &callState{id: callID, ctx: ctx, argv: argv, reason: events.ReasonAllowlisted,
		requestID: reqEnv.EventID, parent: decEnv.EventID, approved: map[string]bool{}}
	s.addCall(cs)
	start := time.Now()
	er, err := s.sb.Exec(ctx, ExecRequest{CallID: callID, Argv: argv, Cwd: SandboxWorkspace, Env: env, Timeout: timeout})
	s.endCall(cs, false)
	done := events.ToolCallCompleted{ExitCode: er.ExitCode, TimedOut: er.TimedOut, KilledReason: er.Killed,
		Signal: er.Signal, DurationMS: uint64(time.Since(start).Milliseconds()),
		Stdout: s.output(er.Stdout), Stderr: s.output(er.Stderr)}
	if done.ExitCode < -1 || done.ExitCode > 255 {
		done.ExitCode = -1
	}
	if err != nil {
		done.ReasonCode, done.Error = events.ReasonSandboxError, clip(err.Error(), 1024)
	}
	s.execViolations(callID, decEnv.EventID, &er)
	if env, eerr := s.envelope(done, events.WithToolCall(callID), events.WithParent(decEnv.EventID)); eerr == nil {
		s.after(env)
	}
	if err != nil {
		return ExitError, fmt.Errorf("%w: %v", ErrSandbox, err)
	}
	code := er.ExitCode
	if code < 0 || code > 255 {
		code = ExitError
	}
	return code, nil
}

// writeManagedConfig writes the agent's managed, non-overridable
// configuration into dir and returns its mount: every hook runs
// agent-hook, and only managed hooks run.
func writeManagedConfig(agent, dir string, hookTimeout time.Duration) (Mount, error) {
	events := []string{"PreToolUse", "PostToolUse", "UserPromptSubmit", "SessionStart", "Stop"}
	// The agent's own time-out lies beyond the hook binary's, which then
	// always answers (and refuses) first: a hook the agent kills lets the
	// tool run.
	agentTimeout := int((hookTimeout + time.Minute) / time.Second)
	command := func(ev string) string {
		return fmt.Sprintf("%s hook --agent %s --event %s --timeout %s", hook.ContainerBinary, agent, ev, hookTimeout)
	}
	var name, dst string
	var body []byte
	switch agent {
	case AgentCodex:
		var b strings.Builder
		b.WriteString("# Written by the agentaudit runner for this session. Managed: neither the\n")
		b.WriteString("# user's nor the project's configuration can add or remove hooks.\n")
		b.WriteString("allow_managed_hooks_only = true\n\n[features]\nhooks = true\n")
		for _, ev := range events {
			fmt.Fprintf(&b, "\n[[hooks.%s]]\n", ev)
			if ev == "PreToolUse" || ev == "PostToolUse" {
				b.WriteString("matcher = \"*\"\n")
			}
			fmt.Fprintf(&b, "[[hooks.%s.hooks]]\ntype = \"command\"\ncommand = %s\ntimeout = %d\n", ev, tomlString(command(ev)), agentTimeout)
		}
		name, dst, body = "requirements.toml", codexRequirements, []byte(b.String())
	case AgentClaude:
		hooks := map[string]any{}
		for _, ev := range events {
			entry := map[string]any{"hooks": []any{map[string]any{"type": "command", "command": command(ev), "timeout": agentTimeout}}}
			if ev == "PreToolUse" || ev == "PostToolUse" {
				entry["matcher"] = "*"
			}
			hooks[ev] = []any{entry}
		}
		b, err := json.MarshalIndent(map[string]any{"allowManagedHooksOnly": true, "hooks": hooks}, "", "  ")
		if err != nil {
			return Mount{}, err
		}
		name, dst, body = "managed-settings.json", claudeManaged, b
	default:
		return Mount{}, fmt.Errorf("%w: agent %q", ErrConfig, agent)
	}
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, body, 0o644); err != nil {
		return Mount{}, err
	}
	return Mount{Source: p, Destination: dst, ReadOnly: true}, nil
}

// findAgentsDir returns dir, else AGENTAUDIT_AGENTS, else testenv/agents
// in this module's source.
func findAgentsDir(dir string) (string, error) {
	if dir == "" {
		dir = os.Getenv("AGENTAUDIT_AGENTS")
	}
	if dir == "" {
		wd, _ := os.Getwd()
		exe, _ := os.Executable()
		for _, start := range []string{wd, filepath.Dir(exe)} {
			if mod := moduleRoot(start); mod != "" {
				dir = filepath.Join(mod, "testenv", "agents")
				break
			}
		}
	}
	if dir == "" {
		return "", fmt.Errorf("%w: --agents-dir: no pinned agent install found; set AGENTAUDIT_AGENTS (see testenv/agents)", ErrConfig)
	}
	return filepath.Abs(dir)
}

// findHookBinary returns bin, else agent-hook next to the runner binary,
// else builds it from this module's source into the socket root's .bin.
func findHookBinary(ctx context.Context, cfg Config, bin string) (string, error) {
	if bin != "" {
		return filepath.Abs(bin)
	}
	exe, err := os.Executable()
	if err == nil {
		if exe, err = filepath.EvalSymlinks(exe); err == nil {
			p := filepath.Join(filepath.Dir(exe), "agent-hook")
			if fi, err := os.Stat(p); err == nil && fi.Mode().IsRegular() {
				return p, nil
			}
		}
	}
	wd, _ := os.Getwd()
	mod := moduleRoot(wd)
	if mod == "" && exe != "" {
		mod = moduleRoot(filepath.Dir(exe))
	}
	if mod == "" {
		return "", errors.New("no agent-hook next to the runner binary and no module source to build one from (make build puts it in bin/)")
	}
	dir := filepath.Join(cfg.SocketRoot, ".bin")
	if err := os.Mkdir(dir, 0o755); err != nil && !errors.Is(err, fs.ErrExist) {
		return "", err
	}
	tmp, err := os.CreateTemp(dir, "agent-hook-*")
	if err != nil {
		return "", err
	}
	tmp.Close()
	defer os.Remove(tmp.Name())
	if err := staticbin.Build(ctx, mod, "./cmd/agent-hook", tmp.Name()); err != nil {
		return "", err
	}
	out := filepath.Join(dir, "agent-hook")
	return out, os.Rename(tmp.Name(), out)
}
