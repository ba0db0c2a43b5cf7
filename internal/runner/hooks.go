package runner

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/agentaudit/agentaudit/internal/events"
	"github.com/agentaudit/agentaudit/internal/hook"
	"github.com/agentaudit/agentaudit/internal/netpol"
	"github.com/agentaudit/agentaudit/internal/policy"
	"github.com/agentaudit/agentaudit/internal/supervisor"
)

// The agent's own tools reach the runner through its managed hooks (see
// internal/hook and cmd/agent-hook). A PreToolUse becomes the same
// tool_call.requested and policy.decision a tool call through the MCP
// server gets, acknowledged by Kafka before the hook answers; an ask waits
// for the signed approval inside the hook (Codex has no ask, and Claude
// Code's -p mode reads one as deny, so the runner asks the human itself
// and answers allow or deny); a PostToolUse becomes tool_call.completed.
// The agent's process tree still runs under the supervisor, so every
// program a tool starts is also checked at exec.

// Agents whose hooks the runner speaks.
const (
	AgentCodex  = "codex"
	AgentClaude = "claude"
)

// hookState is a session's view of its agent's hook calls.
type hookState struct {
	agent string
	// stop closes the hook socket (tests: the runner's end going away);
	// socket is its host path.
	stop   func()
	socket string
	// agentPID is the agent's own process (in the sandbox's namespace).
	agentPID int

	mu      sync.Mutex
	pending map[string]*hookCall // by tool call id, between Pre and Post
	// grants counts hook calls approved by a human per rule, from the
	// approval to their PostToolUse: the programs those calls start ask
	// under the same rule, and are covered by the same approval.
	grants map[string]int
	// seen are the last maxSeenHooks tool call ids the hooks decided, in
	// order: the agent's own telemetry about a call arrives after its
	// PostToolUse, and is linked to the runner's tool call by them.
	seen      map[string]struct{}
	seenOrder []string
}

// maxSeenHooks bounds the tool call ids kept for linking telemetry.
const maxSeenHooks = 4096

type hookCall struct {
	id      string
	parent  string // the decision that let it run
	rule    string
	granted bool
	start   time.Time
	// command is a shell tool's command, whose process the exec check
	// lets start (see ungated).
	command string
}

// maxPendingHooks bounds the hook calls remembered without a PostToolUse
// (a tool that failed before running never gets one).
const maxPendingHooks = 4096

func newHookState(agent string) *hookState {
	return &hookState{agent: agent, pending: map[string]*hookCall{}, grants: map[string]int{}, seen: map[string]struct{}{}}
}

func (h *hookState) add(c *hookCall) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if len(h.pending) >= maxPendingHooks {
		// Forget the oldest: its grant ends with it.
		var oldest *hookCall
		for _, p := range h.pending {
			if oldest == nil || p.start.Before(oldest.start) {
				oldest = p
			}
		}
		h.removeLocked(oldest.id)
	}
	h.pending[c.id] = c
	if c.granted {
		h.grants[c.rule]++
	}
	if _, ok := h.seen[c.id]; !ok {
		if len(h.seenOrder) >= maxSeenHooks {
			delete(h.seen, h.seenOrder[0])
			h.seenOrder = h.seenOrder[1:]
		}
		h.seen[c.id] = struct{}{}
		h.seenOrder = append(h.seenOrder, c.id)
	}
}

// ToolCallID implements otlp.CallLinker: a call the hooks decided has the
// agent's own call id as its tool_call_id.
func (h *hookState) ToolCallID(agentCallID string) (string, bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	_, ok := h.seen[agentCallID]
	return agentCallID, ok
}

func (h *hookState) take(id string) *hookCall {
	h.mu.Lock()
	defer h.mu.Unlock()
	c := h.pending[id]
	h.removeLocked(id)
	return c
}

func (h *hookState) removeLocked(id string) {
	c := h.pending[id]
	if c == nil {
		return
	}
	delete(h.pending, id)
	if c.granted {
		if h.grants[c.rule]--; h.grants[c.rule] <= 0 {
			delete(h.grants, c.rule)
		}
	}
}

// granted reports whether a human approved a running hook call under rule.
func (h *hookState) granted(rule string) bool {
	if h == nil || rule == "" {
		return false
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.grants[rule] > 0
}

// housekeeping reports whether argv is the agent's own machinery that the
// exec policy cannot judge but that only sets the agent up: Claude Code's
// shell snapshot (a bash script it writes to its own config directory
// before its first Bash call). Without this every session's first shell
// call would wait for a human over the agent's internals.
func (h *hookState) housekeeping(argv []string) bool {
	if h == nil || h.agent != AgentClaude || len(argv) != 4 {
		return false
	}
	b := argv[0]
	if i := strings.LastIndexByte(b, '/'); i >= 0 {
		b = b[i+1:]
	}
	return b == "bash" && argv[1] == "-c" && argv[2] == "-l" &&
		strings.HasPrefix(argv[3], "SNAPSHOT_FILE=/tmp/.claude/shell-snapshots/snapshot-bash-")
}

// ungated reports whether an exec is the agent's shell tool starting a
// command that no allowed, still running PreToolUse covers. Both CLIs run a
// tool when its hook fails (killed, removed, replaced by one that says
// nothing), so the runner does not rely on the hook alone: the shell
// tool's own process is refused at exec unless the runner allowed its
// command through the hook. The tool's process is started by the agent
// itself (the call's first program, Root, whose pid is kept): for Claude
// Code, bash -c [-l] "… eval '<command>' …"; for Codex, its process-setup
// helper or, without it, sh -lc <command>.
func (h *hookState) ungated(c *supervisor.Check) bool {
	if h == nil {
		return false
	}
	argv := c.Argv
	h.mu.Lock()
	defer h.mu.Unlock()
	if c.Root {
		h.agentPID = c.PID
		return false
	}
	var script string
	base := ""
	if len(argv) > 0 {
		base = filepath.Base(argv[0])
	}
	if h.agentPID == 0 || c.PPID != h.agentPID {
		return false // not started by the agent itself
	}
	switch {
	case h.agent == AgentClaude && base == "bash" && (len(argv) == 3 || len(argv) == 4 && argv[2] == "-l") && argv[1] == "-c" &&
		strings.Contains(argv[len(argv)-1], "eval '"):
		// eval '<command>', each ' in it written '\'' or '"'"'.
		script = strings.ReplaceAll(strings.ReplaceAll(argv[len(argv)-1], `'\''`, `'`), `'"'"'`, `'`)
	case h.agent == AgentCodex && len(argv) >= 2 && argv[1] == "--codex-run-as-process-setup":
		script = argv[len(argv)-1]
	case h.agent == AgentCodex && len(argv) == 3 &&
		(base == "sh" || base == "bash" || base == "dash" || base == "zsh") && (argv[1] == "-lc" || argv[1] == "-c"):
		if argv[1] == "-c" && strings.HasPrefix(argv[2], hook.ContainerBinary+" hook --agent ") {
			return false // a managed hook, as requirements.toml runs it
		}
		script = argv[2]
	default:
		return false
	}
	for _, p := range h.pending {
		if p.command != "" && strings.Contains(script, p.command) {
			return false
		}
	}
	return true
}

// hookInput is what both agents write to a hook's stdin (the fields the
// runner reads).
type hookInput struct {
	SessionID     string          `json:"session_id"`
	HookEventName string          `json:"hook_event_name"`
	Cwd           string          `json:"cwd"`
	ToolName      string          `json:"tool_name"`
	ToolInput     json.RawMessage `json:"tool_input"`
	ToolUseID     string          `json:"tool_use_id"`
	ToolResponse  json.RawMessage `json:"tool_response"`
	TurnID        string          `json:"turn_id"`
}

// hookMeta is the agent's own correlation for a hook call: Codex's
// tool_use_id is the Responses call_id; Claude Code's is the model's
// tool-use id.
func hookMeta(agent string, in *hookInput) *events.ClientMeta {
	m := &events.ClientMeta{SessionID: clip(in.SessionID, 256), TurnID: clip(in.TurnID, 256)}
	id := clip(in.ToolUseID, 256)
	if agent == AgentCodex {
		m.CallID = id
	} else {
		m.ToolUseID = id
	}
	if *m == (events.ClientMeta{}) {
		return nil
	}
	return m
}

// Hook answers one hook call of the session's agent (hook.Handler).
func (s *Session) Hook(ctx context.Context, req *hook.Request) hook.Response {
	var in hookInput
	if err := json.Unmarshal(req.Input, &in); err != nil {
		return hookDeny(events.ReasonInvalidArguments, "", "the hook input is not JSON: "+err.Error())
	}
	event := orDefault(in.HookEventName, req.Event)
	switch event {
	case "PreToolUse":
		return s.preToolUse(ctx, req.Agent, &in, req.Input)
	case "PostToolUse":
		s.postToolUse(&in)
		return hook.Response{}
	case "UserPromptSubmit":
		if s.Held() {
			return hookDeny(events.ReasonSessionHeld, "", "the session is held; the agent takes no new prompt until it is released")
		}
	}
	// SessionStart, Stop and the rest: nothing to decide. Printing
	// nothing matters: Claude Code adds a SessionStart or
	// UserPromptSubmit hook's output to the model's context.
	return hook.Response{}
}

// hookDeny is the answer both agents read as "do not run the tool": exit
// 2 with the reason on stderr, which the model is shown.
func hookDeny(reason events.ReasonCode, rule, detail string) hook.Response {
	msg := "agentaudit denied this tool call (" + string(reason) + ")"
	if rule != "" {
		msg += " by rule " + rule
	}
	if detail != "" {
		msg += ": " + detail
	}
	return hook.Response{ExitCode: 2, Stderr: msg + "\n"}
}

func hookAllow(agent string, reason events.ReasonCode) hook.Response {
	if agent != AgentClaude {
		// Codex knows no allow answer (it reports one as a failed hook);
		// exit 0 with nothing printed lets the tool run.
		return hook.Response{}
	}
	b, _ := json.Marshal(map[string]any{"hookSpecificOutput": map[string]string{
		"hookEventName": "PreToolUse", "permissionDecision": "allow",
		"permissionDecisionReason": "agentaudit: " + string(reason),
	}})
	return hook.Response{Stdout: string(b) + "\n"}
}

var hookIDPattern = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._:@/+=-]{0,127}$`)

// hookCallID is the event's tool_call_id: the agent's own tool_use_id /
// call_id when it is a valid id, so the audit trail and the agent's
// transcript name a call alike.
func (s *Session) hookCallID(agentID string) string {
	if hookIDPattern.MatchString(agentID) {
		return agentID
	}
	return "call-" + s.r.newID()
}

func (s *Session) preToolUse(ctx context.Context, agent string, in *hookInput, raw []byte) hook.Response {
	if !s.enter() {
		return hookDeny(events.ReasonSessionHeld, "", "the session is closed")
	}
	defer s.calls.Done()
	ctx, cancel := s.callContext(ctx)
	defer cancel()
	s.r.stats.Calls.Add(1)
	s.completions.wait()

	callID := s.hookCallID(in.ToolUseID)
	m := s.mapHookTool(in)
	sum := sha256.Sum256(raw)
	reqEnv, err := s.envelope(events.ToolCallRequested{
		ToolName: hookToolName(in.ToolName), Arguments: m.args,
		ArgumentsSHA256: hex.EncodeToString(sum[:]), ArgumentsTruncated: m.truncated,
		ClientMeta: hookMeta(agent, in),
	}, events.WithToolCall(callID))
	if err != nil {
		return hookDeny(events.ReasonSandboxError, "", "the request could not be recorded: "+err.Error())
	}
	s.count(func(n *events.SessionCounts) { n.ToolCalls++ })
	if err := s.r.emit.Emit(ctx, reqEnv); err != nil {
		return hookDenyErr(s.unavailable(ctx, callID, reqEnv.EventID, err))
	}
	if s.Held() {
		return hookDenyErr(s.refuse(ctx, callID, reqEnv.EventID, deny(events.ReasonSessionHeld,
			"the session is held; no tool call runs until it is released")))
	}
	if m.denied != nil {
		return hookDenyErr(s.refuse(ctx, callID, reqEnv.EventID, m.denied))
	}
	start := time.Now()
	d := s.decideHookTool(ctx, m)
	evalUS := uint64(time.Since(start).Microseconds())
	verdict, reason, mode := d.Verdict, events.ReasonCode(d.ReasonCode), events.ApprovalModeNone
	switch {
	case verdict == policy.Ask && d.RuleID != "" && s.approvedForSession(d.RuleID):
		verdict, reason, mode = policy.Allow, events.ReasonApprovedForSession, events.ApprovalModeSession
	case verdict == policy.Ask:
		mode = events.ApprovalModeRequired
	}
	decEnv, err := s.decision(ctx, callID, reqEnv.EventID, verdict, reason, mode, d.RuleID, d.Justification, evalUS)
	if err != nil {
		return hookDenyErr(s.unavailable(ctx, callID, reqEnv.EventID, err))
	}
	granted := false
	switch verdict {
	case policy.Deny:
		s.r.stats.Denied.Add(1)
		return hookDeny(reason, d.RuleID, orDefault(d.Justification, "the policy denies this call"))
	case policy.Ask:
		if reason, err = s.approve(ctx, callID, reqEnv.EventID, decEnv.EventID, d, m.summary); err != nil {
			return hookDenyErr(err)
		}
		if s.Held() {
			return hookDenyErr(s.refuse(ctx, callID, reqEnv.EventID, deny(events.ReasonSessionHeld,
				"the session was held while the call waited for approval")))
		}
		granted = reason == events.ReasonApproved && d.RuleID != ""
	}
	s.r.stats.Executed.Add(1)
	if s.hooks != nil {
		hc := &hookCall{id: callID, parent: decEnv.EventID, rule: d.RuleID, granted: granted, start: time.Now()}
		if m.call.Tool == ToolShell {
			hc.command = m.call.Command
			if hc.command == "" && len(m.call.Argv) > 0 {
				// bash -lc SCRIPT: the script is what the tool's shell runs.
				hc.command = m.call.Argv[len(m.call.Argv)-1]
			}
		}
		s.hooks.add(hc)
	}
	return hookAllow(agent, reason)
}

// hookToolName is the agent's tool name as an event's tool_name
// (lower case, words joined by _): Bash is bash, WebFetch web_fetch,
// mcp__github__list_issues stays.
func hookToolName(name string) string {
	var b strings.Builder
	for i, r := range name {
		switch {
		case r >= 'A' && r <= 'Z':
			if i > 0 && b.Len() > 0 && !strings.HasSuffix(b.String(), "_") {
				b.WriteByte('_')
			}
			b.WriteRune(r + ('a' - 'A'))
		case r >= 'a' && r <= 'z', r >= '0' && r <= '9', r == '_', r == '.', r == '-':
			b.WriteRune(r)
		default:
			b.WriteByte('_')
		}
		if b.Len() >= 128 {
			break
		}
	}
	out := strings.TrimLeft(b.String(), "0123456789_.-")
	if out == "" {
		return "unknown"
	}
	return out
}

func hookDenyErr(err error) hook.Response {
	var d *DeniedError
	if errors.As(err, &d) {
		return hookDeny(d.Reason, d.RuleID, d.Detail)
	}
	return hookDeny(events.ReasonSandboxError, "", err.Error())
}

// postToolUse records what the agent's tool did.
func (s *Session) postToolUse(in *hookInput) {
	callID := s.hookCallID(in.ToolUseID)
	var hc *hookCall
	if s.hooks != nil {
		hc = s.hooks.take(callID)
	}
	if hc == nil {
		// No PreToolUse was allowed under this id: nothing ran that the
		// runner let run, so there is nothing to complete.
		s.r.o.log.Warn("PostToolUse without an allowed PreToolUse", "session", s.id, "tool_call_id", callID, "tool", in.ToolName)
		return
	}
	stdout, stderr, code := hookToolOutput(in.ToolResponse)
	done := events.ToolCallCompleted{ExitCode: code, DurationMS: uint64(time.Since(hc.start).Milliseconds()),
		Stdout: s.output(streamOf(stdout)), Stderr: s.output(streamOf(stderr))}
	env, err := s.envelope(done, events.WithToolCall(callID), events.WithParent(hc.parent))
	if err != nil {
		s.r.o.log.Error("tool_call.completed could not be built", "session", s.id, "tool_call_id", callID, "err", err)
		return
	}
	s.after(env)
}

// hookToolOutput reads a tool_response: Claude Code's Bash gives stdout,
// stderr and interrupted; Codex gives the output text; file tools give an
// object, kept whole as stdout.
func hookToolOutput(raw json.RawMessage) (stdout, stderr []byte, code int) {
	if len(raw) == 0 || string(raw) == "null" {
		return nil, nil, 0
	}
	var str string
	if json.Unmarshal(raw, &str) == nil {
		return []byte(str), nil, 0
	}
	var obj struct {
		Stdout      *string `json:"stdout"`
		Stderr      string  `json:"stderr"`
		Interrupted bool    `json:"interrupted"`
		ExitCode    *int    `json:"exit_code"`
	}
	if json.Unmarshal(raw, &obj) == nil && obj.Stdout != nil {
		code := 0
		if obj.ExitCode != nil {
			code = *obj.ExitCode
		}
		if obj.Interrupted {
			code = -1
		}
		if code < -1 || code > 255 {
			code = -1
		}
		return []byte(*obj.Stdout), []byte(obj.Stderr), code
	}
	return raw, nil, 0
}

// hookTool is an agent's tool call mapped onto the policy.
type hookTool struct {
	name      string
	call      policy.ToolCall
	args      events.ToolArguments
	truncated bool
	summary   string
	// egress is set for web tools: the egress policy decides each
	// destination, the strictest verdict wins. anyHost marks a web search
	// that may reach any host (no allowed_domains): no rule can name
	// every host, so the policy's default decides it.
	egress  []netpol.Request
	anyHost bool
	// internal marks the agent's own bookkeeping tools, which touch no
	// file, process or network.
	internal bool
	denied   *DeniedError
}

// Tools each agent has that only keep the agent's own state.
var agentInternalTools = map[string]bool{
	"TodoWrite": true, "TodoRead": true, "ExitPlanMode": true, "EnterPlanMode": true, "Task": true,
	"Agent": true, "update_plan": true, "AskUserQuestion": true, "TaskOutput": true, "KillShell": true,
	"BashOutput": true, "ListMcpResourcesTool": true, "ReadMcpResourceTool": true, "Skill": true,
}

// mapHookTool maps an agent's tool onto the policy:
//
//	Bash, exec_command, shell        → the command rules (shell)
//	Write, Edit, MultiEdit,
//	NotebookEdit, apply_patch        → file writes (write_file / edit_file),
//	                                   protected paths; a patch's every path
//	Read, NotebookRead, LS           → read_file / list_files
//	Glob, Grep                       → search_files
//	WebFetch                         → the egress policy, on the URL's host
//	WebSearch                        → the egress policy, on each of its
//	                                   allowed_domains; with none, the
//	                                   policy's default (deny or ask)
//	mcp__*, anything else            → the tool by its name
func (s *Session) mapHookTool(in *hookInput) hookTool {
	m := hookTool{name: in.ToolName}
	var ti map[string]any
	_ = json.Unmarshal(in.ToolInput, &ti)
	str := func(k string) string {
		v, _ := ti[k].(string)
		return v
	}
	bound := func(v string, n int) string {
		if len(v) > n {
			m.truncated = true
		}
		return clip(v, n)
	}
	resolve := func(p string) (string, bool) {
		rel, err := s.ws.Resolve(p)
		switch {
		case errors.Is(err, ErrOutsideWorkspace):
			m.denied = deny(events.ReasonPathOutsideWorkspace, "%s: %q resolves outside %s", in.ToolName, p, SandboxWorkspace)
			return "", false
		case err != nil:
			m.denied = deny(events.ReasonInvalidArguments, "%s: path %q: %v", in.ToolName, p, err)
			return "", false
		}
		return rel, true
	}
	if in.Cwd != "" {
		m.args.Cwd = bound(in.Cwd, 4096)
	}
	name := in.ToolName
	switch {
	case name == "Bash" || name == "exec_command" || name == "shell" || name == "local_shell" || name == "container.exec":
		m.call.Tool = ToolShell
		cwd := orDefault(str("workdir"), in.Cwd)
		m.call.Cwd = cwd
		switch c := ti["command"].(type) {
		case string:
			m.call.Command = c
			m.args.Command = bound(c, 16384)
		case []any:
			for _, a := range c {
				as, _ := a.(string)
				m.call.Argv = append(m.call.Argv, as)
				m.args.Argv = append(m.args.Argv, bound(as, 4096))
			}
		}
		if c := str("cmd"); c != "" && m.call.Command == "" && len(m.call.Argv) == 0 {
			m.call.Command = c
			m.args.Command = bound(c, 16384)
		}
		if !m.call.IsCommand() {
			m.denied = deny(events.ReasonInvalidArguments, "%s without a command", name)
		}
		m.summary = fmt.Sprintf("%s (agent's own shell): %s", name, clip(orDefault(m.call.Command, quoteArgv(m.call.Argv)), 900))
	case name == "apply_patch" || strings.Contains(string(in.ToolInput), "*** Begin Patch"):
		patch := ""
		for _, v := range ti {
			if vs, ok := v.(string); ok && strings.Contains(vs, "*** Begin Patch") {
				patch = vs
			}
		}
		paths := patchPaths(patch)
		if len(paths) == 0 {
			m.denied = deny(events.ReasonInvalidArguments, "%s: no file in the patch", name)
			break
		}
		m.call = policy.ToolCall{Tool: "edit_file", Write: true}
		for _, p := range paths {
			rel, ok := resolve(p)
			if !ok {
				break
			}
			m.call.Paths = append(m.call.Paths, rel)
		}
		m.args.Path = bound(strings.Join(paths, " "), 4096)
		m.args.Command = bound(patch, 16384)
		m.summary = fmt.Sprintf("%s (agent's own patch tool): %s", name, strings.Join(paths, ", "))
	case name == "Write" || name == "Edit" || name == "MultiEdit" || name == "NotebookEdit":
		p := orDefault(str("file_path"), str("notebook_path"))
		m.call = policy.ToolCall{Tool: "edit_file", Write: true}
		if name == "Write" {
			m.call.Tool = ToolWriteFile
			content := []byte(str("content"))
			n := uint64(len(content))
			sum := sha256.Sum256(content)
			m.args.ContentLength, m.args.ContentSHA256 = &n, hex.EncodeToString(sum[:])
		}
		m.args.Path = bound(p, 4096)
		if rel, ok := resolve(p); ok {
			m.call.Paths = []string{rel}
		}
		m.summary = fmt.Sprintf("%s (agent's own file tool) %s", name, p)
	case name == "Read" || name == "NotebookRead" || name == "LS" || name == "Glob" || name == "Grep" || name == "view_image":
		p := orDefault(orDefault(str("file_path"), str("notebook_path")), orDefault(str("path"), "."))
		m.call = policy.ToolCall{Tool: ToolReadFile}
		switch name {
		case "LS":
			m.call.Tool = ToolListFiles
		case "Glob", "Grep":
			m.call.Tool = "search_files"
		}
		m.args.Path = bound(p, 4096)
		if rel, ok := resolve(p); ok {
			m.call.Paths = []string{rel}
		}
		m.summary = fmt.Sprintf("%s (agent's own read tool) %s", name, p)
	case name == "WebFetch":
		u := str("url")
		m.args.URL = bound(u, 4096)
		m.summary = fmt.Sprintf("WebFetch %s", clip(u, 900))
		pu, err := url.Parse(u)
		if err != nil || pu.Hostname() == "" {
			m.denied = deny(events.ReasonInvalidArguments, "WebFetch: url %q has no host", u)
			break
		}
		port := 443
		if pu.Scheme == "http" {
			port = 80
		}
		if ps := pu.Port(); ps != "" {
			port, _ = strconv.Atoi(ps)
		}
		m.egress = []netpol.Request{{Host: pu.Hostname(), Port: uint16(port), Scheme: "https"}}
	case name == "WebSearch" || name == "web_search":
		// The search runs on the model provider's side and reads pages
		// from the hosts it finds: those hosts are its destinations.
		q := str("query")
		var domains []string
		if ds, ok := ti["allowed_domains"].([]any); ok {
			for _, d := range ds {
				if ds, ok := d.(string); ok && ds != "" {
					domains = append(domains, ds)
				}
			}
		}
		if len(domains) > 64 {
			m.denied = deny(events.ReasonInvalidArguments, "WebSearch: %d allowed_domains, at most 64", len(domains))
			break
		}
		for _, d := range domains {
			m.egress = append(m.egress, netpol.Request{Host: d, Port: 443, Scheme: "https"})
		}
		m.anyHost = len(domains) == 0
		m.summary = fmt.Sprintf("WebSearch %q", clip(q, 900))
		if len(domains) > 0 {
			m.summary += " on " + clip(strings.Join(domains, ", "), 900)
		}
	case agentInternalTools[name]:
		m.internal = true
		m.summary = name
	default:
		// mcp__server__tool and whatever else: the tool by name.
		m.call = policy.ToolCall{Tool: name}
		m.summary = "tool " + name
	}
	if m.args.Path == "" && m.args.Command == "" && len(m.args.Argv) == 0 && m.args.URL == "" {
		// Keep something of the input for the record: its keys.
		var keys []string
		for k := range ti {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		if len(keys) > 64 {
			keys, m.truncated = keys[:64], true
		}
		for _, k := range keys {
			m.args.EnvKeys = append(m.args.EnvKeys, clip(k, 128))
		}
	}
	return m
}

// decideHookTool applies the policy that governs a mapped tool.
func (s *Session) decideHookTool(ctx context.Context, m hookTool) policy.Decision {
	switch {
	case m.internal:
		return policy.Decision{Verdict: policy.Allow, ReasonCode: string(events.ReasonKnownSafe),
			Justification: "the agent's own bookkeeping tool: it touches no file, program or network"}
	case len(m.egress) > 0 || m.anyHost:
		eg, _ := s.r.o.egress.(*NetpolEgress)
		if eg == nil || eg.Decider == nil {
			return policy.Decision{Verdict: policy.Deny, ReasonCode: string(events.ReasonDefaultDeny),
				Justification: "the runner has no egress policy: the sandbox has no network"}
		}
		if m.anyHost {
			p := eg.Decider.Policy()
			d := policy.Decision{Verdict: policy.Deny, ReasonCode: string(events.ReasonDefaultDeny)}
			if p.Default == netpol.Ask {
				d = policy.Decision{Verdict: policy.Ask, ReasonCode: string(events.ReasonNeedsApproval)}
			}
			d.Justification = fmt.Sprintf("egress policy %s: a web search without allowed_domains may reach any host, and no rule names every host: the default decides (%s)", p.ID, d.Verdict)
			return d
		}
		var out policy.Decision
		for i, req := range m.egress {
			d := eg.Decider.Decide(ctx, req)
			code := d.Reason
			if !events.ReasonCode(code).Valid() {
				code = string(events.ReasonDefaultDeny)
			}
			got := policy.Decision{Verdict: policy.Verdict(d.Verdict), ReasonCode: code,
				Justification: fmt.Sprintf("egress policy %s on %s:%d (rule %s)", d.PolicyID, d.Host, d.Port, orDefault(d.RuleID, "none"))}
			if i == 0 || stricter(got.Verdict, out.Verdict) {
				out = got
			}
		}
		return out
	}
	return s.r.policy.Evaluate(m.call)
}

// stricter reports whether a is stricter than b: deny over ask over allow.
func stricter(a, b policy.Verdict) bool {
	rank := map[policy.Verdict]int{policy.Allow: 0, policy.Ask: 1, policy.Deny: 2}
	return rank[a] > rank[b]
}

// patchPaths returns the files an apply_patch patch touches: added,
// updated, deleted and moved-to.
func patchPaths(patch string) []string {
	var out []string
	seen := map[string]bool{}
	for _, line := range strings.Split(patch, "\n") {
		line = strings.TrimRight(line, "\r")
		for _, pfx := range []string{"*** Add File: ", "*** Update File: ", "*** Delete File: ", "*** Move to: "} {
			if p, ok := strings.CutPrefix(line, pfx); ok {
				p = strings.TrimSpace(p)
				if p != "" && !seen[p] {
					seen[p] = true
					out = append(out, p)
				}
			}
		}
	}
	return out
}
