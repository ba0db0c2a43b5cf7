package demo

import (
	"context"
	"encoding/json"
	"fmt"
	"path/filepath"
	"strings"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/agentaudit/agentaudit/internal/events"
)

// agent is the scripted MCP client: the agent whose session the demo shows.
type agent struct {
	cs  *mcp.ClientSession
	p   *progress
	log string // the runner's log file
}

// Outcome is one tool call as the agent saw it.
type Outcome struct {
	Tool string
	// What the call asked: the command line or the path.
	Request string
	// Denied: the runner refused the call (IsError with a reason code).
	Denied bool
	// Reason is the reason code the runner returned (allowlisted,
	// approval_denied, session_held, …).
	Reason   events.ReasonCode
	Text     string // the tool result's text
	ExitCode int
	Stdout   string
	Stderr   string
	Duration time.Duration
}

// connectAgent connects to the runner's MCP server over streamable HTTP.
//
// HTTP rather than stdio: a stdio runner exits when the client hangs up,
// and (as of this writing) it can exit before its session's close has
// written session.ended. Over HTTP the runner outlives the MCP session, so
// the demo waits for session.ended before it stops the runner.
func (d *demo) connectAgent(ctx context.Context, endpoint string) (*agent, error) {
	client := mcp.NewClient(&mcp.Implementation{Name: "agentaudit-demo-agent", Version: "1"}, nil)
	cs, err := client.Connect(ctx, &mcp.StreamableClientTransport{Endpoint: endpoint}, nil)
	logPath := filepath.Join(d.cfg.Dir, "logs", "runner.log")
	if err != nil {
		return nil, fmt.Errorf("connect to the runner at %s: %w; its log %s ends:\n%s", endpoint, err, logPath, tail(logPath, 15))
	}
	return &agent{cs: cs, p: d.p, log: logPath}, nil
}

// close ends the MCP session; the runner ends its sandbox session.
func (a *agent) close() error { return a.cs.Close() }

// call runs one tool call and prints it.
func (a *agent) call(ctx context.Context, tool string, args map[string]any) (Outcome, error) {
	o := Outcome{Tool: tool, Request: describeArgs(tool, args)}
	a.p.line("agent → %s %s", tool, o.Request)
	start := time.Now()
	res, err := a.cs.CallTool(ctx, &mcp.CallToolParams{Name: tool, Arguments: args})
	o.Duration = time.Since(start)
	if err != nil {
		return o, fmt.Errorf("%s %s: %w (runner log %s)", tool, o.Request, err, a.log)
	}
	for _, c := range res.Content {
		if t, ok := c.(*mcp.TextContent); ok {
			o.Text += t.Text
		}
	}
	var sc struct {
		Reason   events.ReasonCode `json:"reason_code"`
		ExitCode int               `json:"exit_code"`
		Stdout   string            `json:"stdout"`
		Stderr   string            `json:"stderr"`
	}
	if res.StructuredContent != nil {
		b, _ := json.Marshal(res.StructuredContent)
		json.Unmarshal(b, &sc)
	}
	o.Denied, o.Reason, o.ExitCode, o.Stdout, o.Stderr = res.IsError, sc.Reason, sc.ExitCode, sc.Stdout, sc.Stderr
	switch {
	case o.Denied:
		a.p.line("      ← refused (%s) in %s: %s", o.Reason, round(o.Duration), firstLine(o.Text))
	case tool == "shell":
		a.p.line("      ← exit %d in %s (%s)%s", o.ExitCode, round(o.Duration), o.Reason, indent(o.Stdout, 8))
	default:
		a.p.line("      ← %s in %s (%s)", firstLine(o.Text), round(o.Duration), o.Reason)
	}
	return o, nil
}

func (a *agent) shell(ctx context.Context, command string, timeout time.Duration) (Outcome, error) {
	args := map[string]any{"command": command}
	if timeout > 0 {
		args["timeout_ms"] = timeout.Milliseconds()
	}
	return a.call(ctx, "shell", args)
}

func describeArgs(tool string, args map[string]any) string {
	switch tool {
	case "shell":
		return fmt.Sprintf("%v", args["command"])
	case "write_file":
		return fmt.Sprintf("%v (%d bytes)", args["path"], len(fmt.Sprint(args["content"])))
	default:
		if p, ok := args["path"].(string); ok && p != "" {
			return p
		}
		return "(the workspace root)"
	}
}

func firstLine(s string) string {
	s, _, _ = strings.Cut(strings.TrimSpace(s), "\n")
	return s
}

// indent puts each line of s on its own line, n spaces in; empty s is "".
func indent(s string, n int) string {
	s = strings.TrimRight(s, "\n")
	if s == "" {
		return ""
	}
	pad := strings.Repeat(" ", n)
	return "\n" + pad + strings.ReplaceAll(s, "\n", "\n"+pad)
}
