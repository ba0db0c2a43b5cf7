package runner

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/agentaudit/agentaudit/internal/eventlog"
	"github.com/agentaudit/agentaudit/internal/events"
)

// ShellInput is the shell tool's arguments.
type ShellInput struct {
	Argv      []string `json:"argv,omitempty" jsonschema:"program and arguments, run without a shell; give argv or command"`
	Command   string   `json:"command,omitempty" jsonschema:"shell command line, run with sh -c; give argv or command"`
	Cwd       string   `json:"cwd,omitempty" jsonschema:"working directory, relative to the workspace or absolute under /workspace"`
	TimeoutMS int64    `json:"timeout_ms,omitempty" jsonschema:"time limit in milliseconds (default: the sandbox profile's)"`
}

// ReadFileInput is read_file's arguments.
type ReadFileInput struct {
	Path string `json:"path" jsonschema:"file to read, relative to the workspace or absolute under /workspace"`
}

// WriteFileInput is write_file's arguments.
type WriteFileInput struct {
	Path       string `json:"path" jsonschema:"file to write, relative to the workspace or absolute under /workspace"`
	Content    string `json:"content" jsonschema:"the file's new content"`
	CreateDirs bool   `json:"create_dirs,omitempty" jsonschema:"create missing parent directories"`
}

// ListFilesInput is list_files' arguments.
type ListFilesInput struct {
	Path      string `json:"path,omitempty" jsonschema:"directory to list (default: the workspace root)"`
	Recursive bool   `json:"recursive,omitempty" jsonschema:"descend into subdirectories"`
}

// MCPServer serves the runner's tools over MCP, one runner Session (one
// sandbox, one chain) per MCP session.
type MCPServer struct {
	srv       *mcp.Server
	workspace string
	log       *slog.Logger
	maxFrame  int          // bytes of one inbound JSON-RPC frame (stdio)
	idle      atomic.Int64 // HTTP idle time-out in nanoseconds; 0 on stdio

	// stopping: the server is shutting down, so a session that ends now
	// ends for that reason, not because its client left.
	stopping atomic.Bool

	mu     sync.Mutex
	r      *Runner // nil while the audit log is unavailable (see SetRunner)
	down   error   // why r is nil
	slots  map[*mcp.ServerSession]*slot
	closed bool
	ending sync.WaitGroup // session closes in progress; Close waits for them
}

// DefaultMaxFrame bounds one inbound JSON-RPC frame on stdio. A bigger
// frame is refused with an error naming its size; the session goes on.
const DefaultMaxFrame = 16 << 20

// MCPOption configures an MCPServer.
type MCPOption func(*MCPServer)

// WithMaxFrame bounds one inbound JSON-RPC frame on stdio (default
// DefaultMaxFrame).
func WithMaxFrame(n int) MCPOption { return func(m *MCPServer) { m.maxFrame = n } }

// WithMCPLogger sets the logger of a server started without a runner.
func WithMCPLogger(l *slog.Logger) MCPOption { return func(m *MCPServer) { m.log = l } }

// WithUnavailable starts the server without a runner: every call is
// refused audit_unavailable, naming cause, until SetRunner.
func WithUnavailable(cause error) MCPOption { return func(m *MCPServer) { m.down = cause } }

type slot struct {
	ready chan struct{}
	s     *Session
	err   error
	last  atomic.Int64 // unix nanoseconds of the last call, for the idle time-out
}

// NewMCPServer returns an MCP server whose sessions work in workspace. r
// may be nil (with WithUnavailable): the server then answers initialize
// and lists its tools, but refuses every call audit_unavailable until
// SetRunner, so an agent sees a refusal instead of a missing server.
func NewMCPServer(r *Runner, workspace string, opts ...MCPOption) *MCPServer {
	m := &MCPServer{r: r, workspace: workspace, maxFrame: DefaultMaxFrame, slots: map[*mcp.ServerSession]*slot{}}
	if r != nil {
		m.log = r.o.log
	}
	for _, o := range opts {
		o(m)
	}
	if m.log == nil {
		m.log = slog.New(slog.DiscardHandler)
	}
	if m.r == nil && m.down == nil {
		m.down = eventlog.ErrAuditUnavailable
	}
	m.srv = mcp.NewServer(&mcp.Implementation{Name: "agentaudit-runner", Version: Version}, &mcp.ServerOptions{
		Instructions: "Every tool runs inside a sandbox with no network; the workspace is mounted at /workspace. " +
			"Each call is audited and decided by policy before it runs; a refused call returns an error " +
			"naming its reason code, for example denied (needs_approval→approval_denied).",
		// Start the sandbox as soon as the client is ready, so the first
		// call does not pay for it.
		InitializedHandler: func(ctx context.Context, req *mcp.InitializedRequest) {
			go func() {
				if _, err := m.session(context.WithoutCancel(ctx), req.Session, req.ClientInfo()); err != nil {
					m.log.Error("session start failed", "err", err)
				}
			}()
		},
		Logger: m.log,
	})
	// Annotations let a client tell reads from writes: Codex asks approval
	// for every call of a tool without them.
	mcp.AddTool(m.srv, &mcp.Tool{Name: ToolShell,
		Description: "Run a command in the sandbox (no network; only /workspace is writable). Returns the exit code, stdout and stderr.",
		Annotations: &mcp.ToolAnnotations{Title: "Run a command in the sandbox", DestructiveHint: ptr(true)}},
		func(ctx context.Context, req *mcp.CallToolRequest, in ShellInput) (*mcp.CallToolResult, any, error) {
			return m.call(ctx, req, Call{Tool: ToolShell, Argv: in.Argv, Command: in.Command, Cwd: in.Cwd,
				Timeout: time.Duration(in.TimeoutMS) * time.Millisecond})
		})
	mcp.AddTool(m.srv, &mcp.Tool{Name: ToolReadFile, Description: "Read a file of the workspace.",
		Annotations: &mcp.ToolAnnotations{Title: "Read a workspace file", ReadOnlyHint: true, IdempotentHint: true, OpenWorldHint: ptr(false)}},
		func(ctx context.Context, req *mcp.CallToolRequest, in ReadFileInput) (*mcp.CallToolResult, any, error) {
			return m.call(ctx, req, Call{Tool: ToolReadFile, Path: in.Path})
		})
	mcp.AddTool(m.srv, &mcp.Tool{Name: ToolWriteFile, Description: "Create or replace a file of the workspace.",
		Annotations: &mcp.ToolAnnotations{Title: "Write a workspace file", DestructiveHint: ptr(true), IdempotentHint: true, OpenWorldHint: ptr(false)}},
		func(ctx context.Context, req *mcp.CallToolRequest, in WriteFileInput) (*mcp.CallToolResult, any, error) {
			return m.call(ctx, req, Call{Tool: ToolWriteFile, Path: in.Path, Content: []byte(in.Content), CreateDirs: in.CreateDirs})
		})
	mcp.AddTool(m.srv, &mcp.Tool{Name: ToolListFiles, Description: "List a directory of the workspace.",
		Annotations: &mcp.ToolAnnotations{Title: "List a workspace directory", ReadOnlyHint: true, IdempotentHint: true, OpenWorldHint: ptr(false)}},
		func(ctx context.Context, req *mcp.CallToolRequest, in ListFilesInput) (*mcp.CallToolResult, any, error) {
			return m.call(ctx, req, Call{Tool: ToolListFiles, Path: in.Path, Recursive: in.Recursive})
		})
	return m
}

// Server returns the underlying MCP server.
func (m *MCPServer) Server() *mcp.Server { return m.srv }

// ServeStdio serves one MCP session on stdin/stdout until the client
// disconnects or ctx ends, then ends the session.
func (m *MCPServer) ServeStdio(ctx context.Context) error { return m.serveStdio(ctx, time.Minute) }

func (m *MCPServer) serveStdio(ctx context.Context, closeTimeout time.Duration) error {
	return m.serve(ctx, &frameTransport{r: os.Stdin, w: nopWriteCloser{os.Stdout}, limit: m.maxFrame, log: m.log}, closeTimeout)
}

// serve runs one MCP session on t until the client disconnects or ctx
// ends, then ends every session within closeTimeout.
func (m *MCPServer) serve(ctx context.Context, t mcp.Transport, closeTimeout time.Duration) error {
	if ft, ok := t.(*frameTransport); ok && ft.log == nil {
		ft.log = m.log
	}
	rctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	defer cancel()
	ran := make(chan error, 1)
	go func() { ran <- m.srv.Run(rctx, t) }()
	select {
	case err := <-ran:
		// The client left (or the connection failed).
		cctx, ccancel := context.WithTimeout(context.WithoutCancel(ctx), closeTimeout)
		defer ccancel()
		return errors.Join(err, m.Close(cctx, events.EndClientClosed))
	case <-ctx.Done():
	}
	// Shutdown. The SDK's Run returns only once every tool handler has,
	// so the sessions are ended first, not after: that cuts off their
	// sandboxes, which ends the calls still running.
	cctx, ccancel := context.WithTimeout(context.WithoutCancel(ctx), closeTimeout)
	defer ccancel()
	cerr := m.Close(cctx, events.EndShutdown)
	cancel()
	select {
	case <-ran:
	case <-cctx.Done():
	}
	return cerr
}

// Handler serves MCP over streamable HTTP; each MCP session gets its own
// sandbox. Idle sessions end after idle.
func (m *MCPServer) Handler(idle time.Duration) http.Handler {
	m.idle.Store(int64(idle))
	return mcp.NewStreamableHTTPHandler(func(*http.Request) *mcp.Server { return m.srv },
		&mcp.StreamableHTTPOptions{SessionTimeout: idle, Logger: m.log})
}

// session returns the runner session of an MCP session, starting it on
// first use.
func (m *MCPServer) session(ctx context.Context, ss *mcp.ServerSession, client *mcp.Implementation) (*Session, error) {
	m.mu.Lock()
	if m.closed {
		m.mu.Unlock()
		return nil, ErrSessionClosed
	}
	r := m.r
	if r == nil {
		down := m.down
		m.mu.Unlock()
		return nil, &DeniedError{Reason: events.ReasonAuditUnavailable, Detail: fmt.Sprintf(
			"the audit log (Kafka) is not reachable, so no call runs; the runner keeps retrying (%v)", down)}
	}
	sl := m.slots[ss]
	if sl == nil {
		sl = &slot{ready: make(chan struct{})}
		sl.last.Store(time.Now().UnixNano())
		m.slots[ss] = sl
		m.mu.Unlock()
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Minute)
		sl.s, sl.err = r.OpenSession(sctx, SessionOptions{Workspace: m.workspace, Mode: "mcp", Client: clientInfo(client)})
		cancel()
		close(sl.ready)
		if sl.err != nil {
			m.mu.Lock()
			delete(m.slots, ss) // a later call tries again
			m.mu.Unlock()
		} else if ss != nil {
			go func() {
				_ = ss.Wait()
				reason := events.EndClientClosed
				switch idle := time.Duration(m.idle.Load()); {
				case m.stopping.Load():
					reason = events.EndShutdown
				case idle > 0 && time.Since(time.Unix(0, sl.last.Load())) >= idle:
					// The client went quiet without ending its session
					// (Claude Code never sends DELETE).
					reason = events.EndTimeout
				}
				cctx, cancel := context.WithTimeout(context.Background(), time.Minute)
				defer cancel()
				m.end(cctx, ss, reason)
			}()
		}
	} else {
		m.mu.Unlock()
	}
	sl.last.Store(time.Now().UnixNano())
	select {
	case <-sl.ready:
		return sl.s, sl.err
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// touch notes activity on an MCP session, for the idle time-out's reason.
func (m *MCPServer) touch(ss *mcp.ServerSession) {
	m.mu.Lock()
	sl := m.slots[ss]
	m.mu.Unlock()
	if sl != nil {
		sl.last.Store(time.Now().UnixNano())
	}
}

func (m *MCPServer) end(ctx context.Context, ss *mcp.ServerSession, reason string) {
	m.mu.Lock()
	sl := m.slots[ss]
	delete(m.slots, ss)
	if sl != nil {
		m.ending.Add(1)
	}
	m.mu.Unlock()
	if sl == nil {
		return
	}
	defer m.ending.Done()
	<-sl.ready
	if sl.s != nil {
		t0 := time.Now()
		if err := sl.s.Close(ctx, reason); err != nil {
			m.log.Warn("session close failed", "session", sl.s.ID(), "err", err)
		}
		m.log.Info("session ended", "session", sl.s.ID(), "reason", reason, "took", time.Since(t0))
	}
}

// Close ends every session with reason and refuses new ones.
func (m *MCPServer) Close(ctx context.Context, reason string) error {
	if reason == events.EndShutdown {
		m.stopping.Store(true)
	}
	m.mu.Lock()
	m.closed = true
	var all []*mcp.ServerSession
	for ss := range m.slots {
		all = append(all, ss)
	}
	m.mu.Unlock()
	// At once: each session records its end as soon as its sandbox is
	// cut off, not after the removal of the sandboxes before it.
	var wg sync.WaitGroup
	for _, ss := range all {
		wg.Go(func() { m.end(ctx, ss, reason) })
	}
	wg.Wait()
	// A client that disconnected may have started its session's close on
	// another goroutine; the process must not exit before session.ended.
	m.ending.Wait()
	return nil
}

// clientInfo bounds the client's self-description to what the event
// schema accepts.
func clientInfo(impl *mcp.Implementation) *events.ClientInfo {
	if impl == nil || strings.TrimSpace(impl.Name) == "" {
		return nil
	}
	return &events.ClientInfo{Name: clip(impl.Name, 128), Version: clip(impl.Version, 64)}
}

func (m *MCPServer) call(ctx context.Context, req *mcp.CallToolRequest, c Call) (*mcp.CallToolResult, any, error) {
	if req.Params != nil {
		c.Raw = req.Params.Arguments
		c.Meta = ClientMetaOf(req.Params.Meta)
	}
	s, err := m.session(ctx, req.Session, req.ClientInfo())
	var d *DeniedError
	switch {
	case errors.As(err, &d):
		return toolError(d.Reason, d.Error()), nil, nil
	case errors.Is(err, eventlog.ErrAuditUnavailable):
		d := &DeniedError{Reason: events.ReasonAuditUnavailable, Detail: "the audit log (Kafka) did not acknowledge the session's start, so nothing ran"}
		return toolError(d.Reason, d.Error()), nil, nil
	case err != nil:
		return toolError(events.ReasonSandboxError, fmt.Sprintf("error (sandbox_error): the session could not start: %v", err)), nil, nil
	}
	res, err := s.Call(ctx, c)
	m.touch(req.Session)
	if err != nil {
		if errors.As(err, &d) {
			return toolError(d.Reason, d.Error()), nil, nil
		}
		if errors.Is(err, ErrSandbox) {
			return toolError(events.ReasonSandboxError, "error (sandbox_error): "+strings.TrimPrefix(err.Error(), ErrSandbox.Error()+": ")), nil, nil
		}
		return toolError("", "error: "+err.Error()), nil, nil
	}
	return toolResult(c.Tool, res), nil, nil
}

func toolError(reason events.ReasonCode, msg string) *mcp.CallToolResult {
	r := &mcp.CallToolResult{IsError: true, Content: []mcp.Content{&mcp.TextContent{Text: msg}}}
	if reason != "" {
		r.StructuredContent = map[string]any{"reason_code": string(reason), "message": msg}
	}
	return r
}

func toolResult(tool string, res *Result) *mcp.CallToolResult {
	var text string
	sc := map[string]any{"tool_call_id": res.ToolCallID, "reason_code": string(res.Reason)}
	switch tool {
	case ToolShell:
		e := res.Exec
		var b strings.Builder
		fmt.Fprintf(&b, "exit_code: %d\n", e.ExitCode)
		if e.TimedOut {
			b.WriteString("timed out: the command was killed\n")
		}
		b.WriteString("stdout:\n")
		b.Write(e.Stdout.Data)
		if e.Stdout.Truncated() {
			fmt.Fprintf(&b, "\n… (stdout truncated: %d of %d bytes)", len(e.Stdout.Data), e.Stdout.Length)
		}
		b.WriteString("\nstderr:\n")
		b.Write(e.Stderr.Data)
		if e.Stderr.Truncated() {
			fmt.Fprintf(&b, "\n… (stderr truncated: %d of %d bytes)", len(e.Stderr.Data), e.Stderr.Length)
		}
		text = strings.ToValidUTF8(b.String(), "\uFFFD")
		sc["exit_code"] = e.ExitCode
		sc["stdout"] = strings.ToValidUTF8(string(e.Stdout.Data), "\uFFFD")
		sc["stderr"] = strings.ToValidUTF8(string(e.Stderr.Data), "\uFFFD")
		sc["timed_out"] = e.TimedOut
	case ToolReadFile:
		text = strings.ToValidUTF8(string(res.Data), "\uFFFD")
		if res.Truncated {
			text += fmt.Sprintf("\n… (truncated: %d of %d bytes)", len(res.Data), res.Size)
		}
		sc["path"], sc["size"] = res.Path, res.Size
	case ToolWriteFile:
		text = fmt.Sprintf("wrote %d bytes to %s", res.Written, res.Path)
		sc["path"], sc["bytes"] = res.Path, res.Written
	case ToolListFiles:
		text = FormatEntries(res.Entries, res.Truncated)
		if text == "" {
			text = "(empty directory)"
		}
		sc["path"], sc["entries"] = res.Path, res.Entries
	}
	return &mcp.CallToolResult{Content: []mcp.Content{&mcp.TextContent{Text: text}}, StructuredContent: sc}
}

func ptr[T any](v T) *T { return &v }

// SetRunner ends the server's unavailability: calls from now on run
// through r.
func (m *MCPServer) SetRunner(r *Runner) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.r, m.down = r, nil
}

// SetUnavailable records why the runner could not start yet, for the
// refusals.
func (m *MCPServer) SetUnavailable(cause error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.r == nil {
		m.down = cause
	}
}

// ClientMetaOf picks the agent's correlation keys out of a request's
// _meta: Codex's callId, sessionId, threadId, x-codex-turn-metadata and
// traceparent, Claude Code's claudecode/toolUseId. Values are bounded to
// what the event schema accepts; nil when there is none.
func ClientMetaOf(meta map[string]any) *events.ClientMeta {
	if len(meta) == 0 {
		return nil
	}
	str := func(n int, keys ...string) string {
		for _, k := range keys {
			switch v := meta[k].(type) {
			case string:
				if v = strings.TrimSpace(v); v != "" {
					return clip(v, n)
				}
			case float64:
				return clip(fmt.Sprint(v), n)
			}
		}
		return ""
	}
	cm := events.ClientMeta{
		CallID:      str(256, "callId", "call_id"),
		ToolUseID:   str(256, "claudecode/toolUseId", "toolUseId", "tool_use_id"),
		SessionID:   str(256, "sessionId", "session_id"),
		ThreadID:    str(256, "threadId", "thread_id"),
		TurnID:      str(256, "turnId", "turn_id"),
		Traceparent: str(128, "traceparent"),
	}
	if cm.TurnID == "" {
		cm.TurnID = codexTurnID(meta["x-codex-turn-metadata"])
	}
	if cm == (events.ClientMeta{}) {
		return nil
	}
	return &cm
}

// codexTurnID reads turn_id from Codex's turn metadata, an object or its
// JSON text.
func codexTurnID(v any) string {
	if s, ok := v.(string); ok {
		var o map[string]any
		if json.Unmarshal([]byte(s), &o) != nil {
			return ""
		}
		v = o
	}
	o, ok := v.(map[string]any)
	if !ok {
		return ""
	}
	for _, k := range []string{"turn_id", "turnId"} {
		if s, ok := o[k].(string); ok && strings.TrimSpace(s) != "" {
			return clip(strings.TrimSpace(s), 256)
		}
	}
	return ""
}
