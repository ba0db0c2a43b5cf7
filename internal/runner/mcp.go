package runner

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"

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
	r         *Runner
	srv       *mcp.Server
	workspace string
	log       *slog.Logger

	mu     sync.Mutex
	slots  map[*mcp.ServerSession]*slot
	closed bool
	ending sync.WaitGroup // session closes in progress; Close waits for them
}

type slot struct {
	ready chan struct{}
	s     *Session
	err   error
}

// NewMCPServer returns an MCP server whose sessions work in workspace.
func NewMCPServer(r *Runner, workspace string) *MCPServer {
	m := &MCPServer{r: r, workspace: workspace, log: r.o.log, slots: map[*mcp.ServerSession]*slot{}}
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
		Logger: r.o.log,
	})
	mcp.AddTool(m.srv, &mcp.Tool{Name: ToolShell,
		Description: "Run a command in the sandbox (no network; only /workspace is writable). Returns the exit code, stdout and stderr."},
		func(ctx context.Context, req *mcp.CallToolRequest, in ShellInput) (*mcp.CallToolResult, any, error) {
			return m.call(ctx, req, Call{Tool: ToolShell, Argv: in.Argv, Command: in.Command, Cwd: in.Cwd,
				Timeout: time.Duration(in.TimeoutMS) * time.Millisecond})
		})
	mcp.AddTool(m.srv, &mcp.Tool{Name: ToolReadFile, Description: "Read a file of the workspace."},
		func(ctx context.Context, req *mcp.CallToolRequest, in ReadFileInput) (*mcp.CallToolResult, any, error) {
			return m.call(ctx, req, Call{Tool: ToolReadFile, Path: in.Path})
		})
	mcp.AddTool(m.srv, &mcp.Tool{Name: ToolWriteFile, Description: "Create or replace a file of the workspace."},
		func(ctx context.Context, req *mcp.CallToolRequest, in WriteFileInput) (*mcp.CallToolResult, any, error) {
			return m.call(ctx, req, Call{Tool: ToolWriteFile, Path: in.Path, Content: []byte(in.Content), CreateDirs: in.CreateDirs})
		})
	mcp.AddTool(m.srv, &mcp.Tool{Name: ToolListFiles, Description: "List a directory of the workspace."},
		func(ctx context.Context, req *mcp.CallToolRequest, in ListFilesInput) (*mcp.CallToolResult, any, error) {
			return m.call(ctx, req, Call{Tool: ToolListFiles, Path: in.Path, Recursive: in.Recursive})
		})
	return m
}

// Server returns the underlying MCP server.
func (m *MCPServer) Server() *mcp.Server { return m.srv }

// ServeStdio serves one MCP session on stdin/stdout until the client
// disconnects or ctx ends, then ends the session.
func (m *MCPServer) ServeStdio(ctx context.Context) error {
	err := m.srv.Run(ctx, &mcp.StdioTransport{})
	reason := events.EndClientClosed
	if ctx.Err() != nil {
		reason, err = events.EndShutdown, nil
	}
	cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Minute)
	defer cancel()
	return errors.Join(err, m.Close(cctx, reason))
}

// Handler serves MCP over streamable HTTP; each MCP session gets its own
// sandbox. Idle sessions end after idle.
func (m *MCPServer) Handler(idle time.Duration) http.Handler {
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
	sl := m.slots[ss]
	if sl == nil {
		sl = &slot{ready: make(chan struct{})}
		m.slots[ss] = sl
		m.mu.Unlock()
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Minute)
		sl.s, sl.err = m.r.OpenSession(sctx, SessionOptions{Workspace: m.workspace, Mode: "mcp", Client: clientInfo(client)})
		cancel()
		close(sl.ready)
		if sl.err != nil {
			m.mu.Lock()
			delete(m.slots, ss) // a later call tries again
			m.mu.Unlock()
		} else if ss != nil {
			go func() {
				_ = ss.Wait()
				cctx, cancel := context.WithTimeout(context.Background(), time.Minute)
				defer cancel()
				m.end(cctx, ss, events.EndClientClosed)
			}()
		}
	} else {
		m.mu.Unlock()
	}
	select {
	case <-sl.ready:
		return sl.s, sl.err
	case <-ctx.Done():
		return nil, ctx.Err()
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
		if err := sl.s.Close(ctx, reason); err != nil {
			m.log.Warn("session close failed", "session", sl.s.ID(), "err", err)
		}
	}
}

// Close ends every session with reason and refuses new ones.
func (m *MCPServer) Close(ctx context.Context, reason string) error {
	m.mu.Lock()
	m.closed = true
	var all []*mcp.ServerSession
	for ss := range m.slots {
		all = append(all, ss)
	}
	m.mu.Unlock()
	for _, ss := range all {
		m.end(ctx, ss, reason)
	}
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
	}
	s, err := m.session(ctx, req.Session, req.ClientInfo())
	if err != nil {
		return toolError(events.ReasonSandboxError, fmt.Sprintf("error (sandbox_error): the session could not start: %v", err)), nil, nil
	}
	res, err := s.Call(ctx, c)
	if err != nil {
		var d *DeniedError
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
