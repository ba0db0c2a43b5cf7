package runner

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

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

// connectFramed connects a client to m through the stdio framing.
func connectFramed(t *testing.T, m *MCPServer) *mcp.ClientSession {
	t.Helper()
	ctx := context.Background()
	cs, stop, err := ConnectInProcess(ctx, m)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { stop(ctx) })
	return cs
}

// requested returns the tool_call.requested payloads of the rig.
func requested(t *testing.T, g *rig) []*events.ToolCallRequested {
	t.Helper()
	var out []*events.ToolCallRequested
	for _, e := range g.em.all() {
		if e.EventType != events.TypeToolCallRequested {
			continue
		}
		p, err := e.DecodePayload()
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, p.(*events.ToolCallRequested))
	}
	return out
}

func TestMCPClientMetaRecorded(t *testing.T) {
	g := newRig(t)
	cs, _ := connectMCP(t, g)
	ctx := context.Background()
	calls := []struct {
		name string
		meta mcp.Meta
		want *events.ClientMeta
	}{
		{"codex", mcp.Meta{"callId": "call_abc123", "sessionId": "0199a213-81c0", "threadId": "0199a213-81c0",
			"x-codex-turn-metadata": map[string]any{"turn_id": "turn-7", "model": "gpt-5"},
			"traceparent":           "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"},
			&events.ClientMeta{CallID: "call_abc123", SessionID: "0199a213-81c0", ThreadID: "0199a213-81c0", TurnID: "turn-7",
				Traceparent: "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"}},
		{"codex turn metadata as JSON text", mcp.Meta{"callId": "call_2", "x-codex-turn-metadata": `{"turn_id":"turn-8"}`},
			&events.ClientMeta{CallID: "call_2", TurnID: "turn-8"}},
		{"claude code", mcp.Meta{"claudecode/toolUseId": "toolu_01A09q90qw90lq917835lq9", "progressToken": 3},
			&events.ClientMeta{ToolUseID: "toolu_01A09q90qw90lq917835lq9"}},
		{"no meta", nil, nil},
		{"oversized id is bounded", mcp.Meta{"callId": strings.Repeat("x", 300)}, &events.ClientMeta{CallID: strings.Repeat("x", 256)}},
	}
	for _, c := range calls {
		p := &mcp.CallToolParams{Name: "list_files", Arguments: map[string]any{}}
		p.Meta = c.meta
		if res, err := cs.CallTool(ctx, p); err != nil || res.IsError {
			t.Fatalf("%s: %v %v", c.name, err, res)
		}
	}
	got := requested(t, g)
	if len(got) != len(calls) {
		t.Fatalf("%d tool_call.requested, want %d", len(got), len(calls))
	}
	for i, c := range calls {
		if diff := cmp.Diff(c.want, got[i].ClientMeta); diff != "" {
			t.Errorf("%s: client_meta (-want +got):\n%s", c.name, diff)
		}
	}
}

func TestMCPToolAnnotations(t *testing.T) {
	g := newRig(t)
	cs, _ := connectMCP(t, g)
	tools, err := cs.ListTools(context.Background(), nil)
	if err != nil {
		t.Fatal(err)
	}
	type hints struct{ ReadOnly, Destructive, Idempotent bool }
	got := map[string]hints{}
	for _, tl := range tools.Tools {
		a := tl.Annotations
		if a == nil {
			t.Fatalf("%s has no annotations", tl.Name)
		}
		got[tl.Name] = hints{a.ReadOnlyHint, a.DestructiveHint != nil && *a.DestructiveHint, a.IdempotentHint}
	}
	want := map[string]hints{
		"read_file":  {ReadOnly: true, Idempotent: true},
		"list_files": {ReadOnly: true, Idempotent: true},
		"write_file": {Destructive: true, Idempotent: true},
		"shell":      {Destructive: true},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("annotations (-want +got):\n%s", diff)
	}
}

// A frame over the limit gets a JSON-RPC error naming its size, and the
// session (and its sandbox) goes on.
func TestMCPOversizedFrameIsRefused(t *testing.T) {
	g := newRig(t)
	m := NewMCPServer(g.r, g.ws, WithMaxFrame(64<<10))
	cs := connectFramed(t, m)
	ctx := context.Background()
	if _, err := cs.CallTool(ctx, &mcp.CallToolParams{Name: "list_files", Arguments: map[string]any{}}); err != nil {
		t.Fatal(err)
	}
	_, err := cs.CallTool(ctx, &mcp.CallToolParams{Name: "write_file",
		Arguments: map[string]any{"path": "big.txt", "content": strings.Repeat("a", 200<<10)}})
	if err == nil || !strings.Contains(err.Error(), "exceeds the runner's limit of 65536 bytes per message") {
		t.Fatalf("oversized call: %v", err)
	}
	if exists(g.ws, "big.txt") {
		t.Error("the oversized write ran")
	}
	res, err := cs.CallTool(ctx, &mcp.CallToolParams{Name: "write_file", Arguments: map[string]any{"path": "small.txt", "content": "ok"}})
	if err != nil || res.IsError {
		t.Fatalf("call after the oversized frame: %v %v", err, res)
	}
	if g.sb.started != 1 {
		t.Errorf("sandboxes started = %d, want 1 (the session survived)", g.sb.started)
	}
	for _, e := range g.em.all() {
		if e.EventType == events.TypeSessionEnded {
			t.Errorf("session ended after the oversized frame")
		}
	}
}

func TestFrameReaderStandIn(t *testing.T) {
	big := strings.Repeat("b", 300)
	lines := []string{
		`{"jsonrpc":"2.0","id":1,"method":"ping"}`,
		`{"jsonrpc":"2.0","id":"req-2","method":"tools/call","params":{"id":9,"x":"` + big + `"}}`,
		`{"jsonrpc":"2.0","method":"notifications/x","params":{"x":"` + big + `"}}`,
		`{"jsonrpc":"2.0","method":"tools/call","params":{"id":7,"x":"` + big + `"},"id":3}`, // id after params: unknown
		`{"jsonrpc":"2.0","id":4,"method":"ping"}`,
	}
	fr := &frameReader{br: bufio.NewReaderSize(strings.NewReader(strings.Join(lines, "\n")+"\n"), 16), limit: 200}
	out, err := io.ReadAll(fr)
	if err != nil {
		t.Fatal(err)
	}
	n := func(i int) int { return len(lines[i]) + 1 }
	want := lines[0] + "\n" +
		fmt.Sprintf(`{"jsonrpc":"2.0","id":"req-2","method":"agentaudit/oversized_frame","params":{"bytes":%d,"limit":200}}`, n(1)) + "\n" +
		fmt.Sprintf(`{"jsonrpc":"2.0","method":"agentaudit/oversized_frame","params":{"bytes":%d,"limit":200}}`, n(2)) + "\n" +
		fmt.Sprintf(`{"jsonrpc":"2.0","method":"agentaudit/oversized_frame","params":{"bytes":%d,"limit":200}}`, n(3)) + "\n" +
		lines[4] + "\n"
	if diff := cmp.Diff(want, string(out)); diff != "" {
		t.Errorf("frames (-want +got):\n%s", diff)
	}
}

// Without a runner (Kafka unreachable at start) the server still answers:
// tools are listed, calls are refused audit_unavailable; once the runner
// is set they run.
func TestMCPUnavailableUntilRunnerSet(t *testing.T) {
	g := newRig(t)
	m := NewMCPServer(nil, g.ws, WithUnavailable(errors.New("dial tcp 127.0.0.1:1: connection refused")))
	cs := connectFramed(t, m)
	ctx := context.Background()
	tools, err := cs.ListTools(ctx, nil)
	if err != nil || len(tools.Tools) != 4 {
		t.Fatalf("tools/list while unavailable: %v %v", err, tools)
	}
	res, err := cs.CallTool(ctx, &mcp.CallToolParams{Name: "shell", Arguments: map[string]any{"argv": []string{"echo", "hi"}}})
	if err != nil {
		t.Fatal(err)
	}
	sc, _ := res.StructuredContent.(map[string]any)
	if !res.IsError || sc["reason_code"] != "audit_unavailable" || !strings.HasPrefix(textOf(res), "denied (audit_unavailable): ") {
		t.Errorf("call while unavailable: error=%v %v %q", res.IsError, sc, textOf(res))
	}
	if len(g.sb.ran()) != 0 || g.sb.started != 0 {
		t.Errorf("something ran while unavailable: %v", g.sb.ran())
	}
	m.SetRunner(g.r)
	res, err = cs.CallTool(ctx, &mcp.CallToolParams{Name: "shell", Arguments: map[string]any{"argv": []string{"echo", "hi"}}})
	if err != nil || res.IsError {
		t.Fatalf("call once available: %v %q", err, textOf(res))
	}
}

// The MCP layer on fakes keeps nothing per call: the live heap after
// 2,000 calls in one session is where it was.
func TestMCPSoakFakesFlat(t *testing.T) {
	if testing.Short() {
		t.Skip("soak")
	}
	g := newRig(t)
	g.em.keep = false
	g.sb.result = func(req ExecRequest) ExecResult {
		return ExecResult{Stdout: streamOf([]byte("ok\n")), Stderr: streamOf(nil)}
	}
	g.r.o.log = slog.New(slog.DiscardHandler)
	m := NewMCPServer(g.r, g.ws)
	cs := connectFramed(t, m)
	rep, err := Soak(context.Background(), "mcp-fakes", SoakOptions{Calls: 2000, Warmup: 200, Samples: 4}, SoakMCPClient(cs))
	if err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	rep.Print(&b)
	t.Log(b.String())
	// The fake sandbox keeps each exec's argv (500 here); the rest must not grow.
	if rep.Errors != 0 || rep.PerCall() > 200 {
		t.Errorf("soak on fakes: %d errors (%v), %+.0f B/call retained", rep.Errors, rep.FirstErr, rep.PerCall())
	}
}

// Over HTTP a client that never sends DELETE (Claude Code) leaves its
// session to the idle time-out: the sandbox goes and session.ended says
// timeout.
func TestMCPHTTPIdleTimeoutEndsSession(t *testing.T) {
	g := newRig(t)
	m := NewMCPServer(g.r, g.ws)
	srv := httptest.NewServer(m.Handler(300 * time.Millisecond))
	defer srv.Close()
	defer m.Close(context.Background(), events.EndShutdown)
	ctx := context.Background()
	cl := mcp.NewClient(&mcp.Implementation{Name: "idle-client", Version: "1"}, nil)
	cs, err := cl.Connect(ctx, &mcp.StreamableClientTransport{Endpoint: srv.URL, DisableStandaloneSSE: true}, nil)
	if err != nil {
		t.Fatal(err)
	}
	_ = cs // never closed: no DELETE
	if res, err := cs.CallTool(ctx, &mcp.CallToolParams{Name: "list_files", Arguments: map[string]any{}}); err != nil || res.IsError {
		t.Fatalf("call: %v %v", err, res)
	}
	var sess string
	for _, e := range g.em.all() {
		if e.EventType == events.TypeSessionStarted {
			sess = e.SessionID
		}
	}
	env := g.em.waitFor(t, sess, events.TypeSessionEnded, 0)
	p, _ := env.DecodePayload()
	if got := p.(*events.SessionEnded).Reason; got != events.EndTimeout {
		t.Errorf("session.ended reason %q, want %q", got, events.EndTimeout)
	}
	g.sb.mu.Lock()
	closed := g.sb.closed
	g.sb.mu.Unlock()
	if closed != 1 {
		t.Errorf("sandboxes closed = %d, want 1", closed)
	}
}
