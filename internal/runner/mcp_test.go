package runner

import (
	"context"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/agentaudit/agentaudit/internal/events"
)

func connectMCP(t *testing.T, g *rig) (*mcp.ClientSession, *MCPServer) {
	t.Helper()
	m := NewMCPServer(g.r, g.ws)
	ct, st := mcp.NewInMemoryTransports()
	ctx := context.Background()
	go func() { _, _ = m.Server().Connect(ctx, st, nil) }()
	cl := mcp.NewClient(&mcp.Implementation{Name: "unit-client", Version: "9.9"}, nil)
	cs, err := cl.Connect(ctx, ct, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cs.Close()
		m.Close(context.Background(), events.EndClientClosed)
	})
	return cs, m
}

func textOf(r *mcp.CallToolResult) string {
	var b strings.Builder
	for _, c := range r.Content {
		if tc, ok := c.(*mcp.TextContent); ok {
			b.WriteString(tc.Text)
		}
	}
	return b.String()
}

func TestMCPToolsAndDenial(t *testing.T) {
	g := newRig(t)
	cs, _ := connectMCP(t, g)
	ctx := context.Background()
	tools, err := cs.ListTools(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, tl := range tools.Tools {
		names = append(names, tl.Name)
	}
	if diff := cmp.Diff([]string{"list_files", "read_file", "shell", "write_file"}, names); diff != "" {
		t.Errorf("tools (-want +got):\n%s", diff)
	}

	res, err := cs.CallTool(ctx, &mcp.CallToolParams{Name: "shell", Arguments: map[string]any{"argv": []string{"echo", "hi"}}})
	if err != nil {
		t.Fatal(err)
	}
	if res.IsError || !strings.Contains(textOf(res), "exit_code: 0") || !strings.Contains(textOf(res), "ran: echo hi") {
		t.Errorf("shell result: error=%v %q", res.IsError, textOf(res))
	}

	res, err = cs.CallTool(ctx, &mcp.CallToolParams{Name: "shell", Arguments: map[string]any{"command": "rm -rf /"}})
	if err != nil {
		t.Fatal(err)
	}
	if !res.IsError || !strings.HasPrefix(textOf(res), "denied (denied_by_rule) by rule destroy-root: ") {
		t.Errorf("denial: error=%v %q", res.IsError, textOf(res))
	}

	res, err = cs.CallTool(ctx, &mcp.CallToolParams{Name: "read_file", Arguments: map[string]any{"path": "../../etc/passwd"}})
	if err != nil {
		t.Fatal(err)
	}
	if !res.IsError || !strings.Contains(textOf(res), "(path_outside_workspace)") {
		t.Errorf("escape: error=%v %q", res.IsError, textOf(res))
	}

	// One session for the MCP connection, named after the client.
	if g.sb.started != 1 {
		t.Errorf("sandboxes started = %d, want 1", g.sb.started)
	}
	var started *events.Envelope
	for _, e := range g.em.all() {
		if e.EventType == events.TypeSessionStarted {
			started = e
		}
	}
	if started == nil || started.Agent == nil || *started.Agent != (events.Agent{Name: "unit-client", Version: "9.9"}) {
		t.Errorf("session.started agent = %+v", started)
	}
}
