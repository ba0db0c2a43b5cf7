package otlp

import (
	"path"
	"slices"
	"strings"

	"github.com/agentaudit/agentaudit/internal/events"
	"github.com/agentaudit/agentaudit/internal/policy"
)

// PolicyJudge judges agent tool calls with the runner's tool-call policy:
// shell tools (Bash, exec_command, shell, local_shell) by their command,
// file-writing tools (Write, Edit, MultiEdit, NotebookEdit, apply_patch)
// by the path they wrote, relative to workspace when under it.
type PolicyJudge struct {
	Policy    *policy.Policy
	Workspace string // default /workspace
}

var shellTools = []string{"bash", "exec_command", "shell", "local_shell", "container.exec", "unified_exec"}
var writeTools = []string{"write", "edit", "multiedit", "notebookedit", "apply_patch", "str_replace_based_edit_tool"}

// Judge implements Judge.
func (j PolicyJudge) Judge(c AgentCall) (events.AgentPolicy, bool) {
	if j.Policy == nil {
		return events.AgentPolicy{}, false
	}
	tool := strings.ToLower(c.Tool)
	var call policy.ToolCall
	switch {
	case c.Command != "" && (slices.Contains(shellTools, tool) || tool == ""):
		call = policy.ToolCall{Tool: policy.ShellTool, Command: c.Command}
	case c.Path != "" && slices.Contains(writeTools, tool):
		ws := j.Workspace
		if ws == "" {
			ws = policy.DefaultWorkspace
		}
		p := c.Path
		if rel, ok := strings.CutPrefix(path.Clean(p), strings.TrimSuffix(ws, "/")+"/"); ok {
			p = rel
		}
		call = policy.ToolCall{Tool: "write_file", Paths: []string{p}, Write: true}
	default:
		return events.AgentPolicy{}, false
	}
	d := j.Policy.Evaluate(call)
	out := events.AgentPolicy{Decision: events.Decision(d.Verdict), ReasonCode: events.ReasonCode(d.ReasonCode),
		RuleID: d.RuleID, PolicyID: d.PolicyID, PolicySHA256: d.PolicySHA256}
	if !validRuleID(out.RuleID) {
		out.RuleID = ""
	}
	if !validName(out.PolicyID) {
		out.PolicyID = ""
	}
	return out, true
}

func validRuleID(s string) bool {
	if s == "" || len(s) > 128 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || i > 0 && strings.IndexByte("._/-", c) >= 0) {
			return false
		}
	}
	return true
}

func validName(s string) bool { return s != "" && sessionName(s) == s }
