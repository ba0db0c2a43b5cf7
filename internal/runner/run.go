package runner

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/agentaudit/agentaudit/internal/eventlog"
	"github.com/agentaudit/agentaudit/internal/events"
)

// Exit codes of `runner exec` when the command did not run.
const (
	ExitDenied = 126 // the gateway refused the call; stderr says why
	ExitError  = 125 // the runner or the sandbox failed
)

// RunExec is `runner exec`: argv runs in a fresh session on cfg.Workspace,
// its output is copied to stdout and stderr, and its exit code is returned.
// A refused call returns ExitDenied with the reason on stderr.
func RunExec(ctx context.Context, cfg Config, argv []string, stdout, stderr io.Writer) (int, error) {
	if cfg.Workspace == "" {
		return ExitError, fmt.Errorf("%w: --workspace: required", ErrConfig)
	}
	if len(argv) == 0 {
		return ExitError, fmt.Errorf("%w: no command after --", ErrConfig)
	}
	// A person runs this at a terminal: an approval wait is said, not
	// silent.
	svc, err := Open(ctx, cfg, WithOnAsk(func(a AskNotice) {
		fmt.Fprintf(stderr, "runner: waiting for approval %s until %s: %s (%s)\n  answer it in the inbox, or: approve show %s\n",
			a.ApprovalID, a.Expires.Local().Format("15:04:05"), a.Summary, a.Reason, a.ApprovalID)
	}))
	if err != nil {
		return ExitError, err
	}
	defer svc.Close(context.WithoutCancel(ctx))
	s, err := svc.OpenSession(ctx, SessionOptions{Workspace: cfg.Workspace, Mode: "exec"})
	if err != nil {
		return ExitError, err
	}
	res, err := s.Call(ctx, Call{Tool: ToolShell, Argv: argv, Raw: rawArgv(argv)})
	reason := events.EndCompleted
	if err != nil && !errors.Is(err, ErrDenied) {
		reason = events.EndError
	}
	cerr := s.Close(context.WithoutCancel(ctx), reason)
	if err != nil {
		fmt.Fprintf(stderr, "runner: %v\n", err)
		if errors.Is(err, ErrDenied) {
			return ExitDenied, nil
		}
		return ExitError, nil
	}
	stdout.Write(res.Exec.Stdout.Data)
	stderr.Write(res.Exec.Stderr.Data)
	if res.Exec.Stdout.Truncated() || res.Exec.Stderr.Truncated() {
		fmt.Fprintf(stderr, "runner: output truncated to the sandbox's limit (stdout %d bytes, stderr %d bytes in full)\n",
			res.Exec.Stdout.Length, res.Exec.Stderr.Length)
	}
	if res.Exec.TimedOut {
		fmt.Fprintln(stderr, "runner: the command timed out and was killed")
	}
	if cerr != nil {
		fmt.Fprintf(stderr, "runner: closing the sandbox: %v\n", cerr)
	}
	code := res.Exec.ExitCode
	if code < 0 || code > 255 {
		code = ExitError
	}
	return code, nil
}

// rawArgv encodes argv as the arguments object the shell tool would get.
func rawArgv(argv []string) []byte {
	var b strings.Builder
	b.WriteString(`{"argv":[`)
	for i, a := range argv {
		if i > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, "%q", a)
	}
	b.WriteString("]}")
	return []byte(b.String())
}

// ServeOptions select the MCP transport of `runner serve`.
type ServeOptions struct {
	Transport string // "stdio" or "http"
	Listen    string // http: 127.0.0.1:PORT
	// Ready, when set, is called with the listening address (http).
	Ready func(addr string)
	// IdleTimeout ends HTTP sessions without requests (default 30
	// minutes): Claude Code never sends DELETE for its session.
	IdleTimeout time.Duration
	// MaxFrame bounds one inbound JSON-RPC message on stdio (default
	// DefaultMaxFrame); a bigger one is refused, the session goes on.
	MaxFrame int
	// Retry is the first wait before Kafka is tried again when it was
	// unreachable at start (default 1s, doubling up to RetryMax, 30s).
	Retry, RetryMax time.Duration
	// CloseTimeout bounds ending the sessions at shutdown (default 1
	// minute).
	CloseTimeout time.Duration
}

// Serve is `runner serve`: an MCP server with one sandbox session per MCP
// session, until ctx ends (or, on stdio, the client disconnects).
//
// When Kafka cannot be reached at start, Serve serves anyway: the client
// gets its tools and every call is refused audit_unavailable (an agent
// that does not see the server at all carries on without it), while the
// runner retries with back-off; calls run once Kafka answers.
func Serve(ctx context.Context, cfg Config, so ServeOptions) error {
	if cfg.Workspace == "" {
		return fmt.Errorf("%w: --workspace: required", ErrConfig)
	}
	if so.CloseTimeout <= 0 {
		so.CloseTimeout = time.Minute
	}
	if so.Transport == "http" {
		h, _, err := net.SplitHostPort(so.Listen)
		if err != nil {
			return fmt.Errorf("%w: --listen: %v", ErrConfig, err)
		}
		if ip := net.ParseIP(h); ip == nil || !ip.IsLoopback() {
			return fmt.Errorf("%w: --listen: %q is not a loopback address", ErrConfig, so.Listen)
		}
	} else if so.Transport != "stdio" {
		return fmt.Errorf("%w: --mcp: %q (want stdio or http)", ErrConfig, so.Transport)
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	mopts := []MCPOption{WithMCPLogger(log)}
	if so.MaxFrame > 0 {
		mopts = append(mopts, WithMaxFrame(so.MaxFrame))
	}
	var (
		svcMu sync.Mutex
		svc   *Service
	)
	first, err := Open(ctx, cfg)
	var m *MCPServer
	switch {
	case err == nil:
		svc = first
		m = NewMCPServer(svc.Runner, cfg.Workspace, mopts...)
	case errors.Is(err, eventlog.ErrAuditUnavailable):
		log.Error("Kafka is unreachable; serving, and refusing every call audit_unavailable until it answers", "err", err)
		m = NewMCPServer(nil, cfg.Workspace, append(mopts, WithUnavailable(err))...)
	default:
		return err
	}
	retryCtx, stopRetry := context.WithCancel(ctx)
	retried := make(chan struct{})
	go func() {
		defer close(retried)
		if svc != nil {
			return
		}
		s := reopen(retryCtx, cfg, so, m, log)
		svcMu.Lock()
		svc = s
		svcMu.Unlock()
	}()
	defer func() {
		stopRetry()
		<-retried
		svcMu.Lock()
		defer svcMu.Unlock()
		if svc != nil {
			cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), so.CloseTimeout)
			defer cancel()
			svc.Close(cctx)
		}
	}()

	switch so.Transport {
	case "stdio":
		return m.serveStdio(ctx, so.CloseTimeout)
	}
	ln, err := net.Listen("tcp", so.Listen)
	if err != nil {
		return err
	}
	if so.IdleTimeout == 0 {
		so.IdleTimeout = 30 * time.Minute
	}
	srv := &http.Server{Handler: m.Handler(so.IdleTimeout), ReadHeaderTimeout: 10 * time.Second}
	if so.Ready != nil {
		so.Ready(ln.Addr().String())
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err = <-errc:
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), so.CloseTimeout)
	defer cancel()
	// Sessions first: a client still connected keeps its stream open,
	// and Shutdown would wait for it.
	cerr := m.Close(sctx, events.EndShutdown)
	_ = srv.Shutdown(sctx)
	return errors.Join(err, cerr)
}

// reopen opens the runner until Kafka answers or ctx ends, waiting longer
// after each failure, and hands the runner to m.
func reopen(ctx context.Context, cfg Config, so ServeOptions, m *MCPServer, log *slog.Logger) *Service {
	wait := so.Retry
	if wait <= 0 {
		wait = time.Second
	}
	most := so.RetryMax
	if most <= 0 {
		most = 30 * time.Second
	}
	for {
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil
		case <-t.C:
		}
		svc, err := Open(ctx, cfg)
		if err == nil {
			m.SetRunner(svc.Runner)
			log.Warn("Kafka answers again; calls run from now on")
			return svc
		}
		if ctx.Err() != nil {
			return nil
		}
		m.SetUnavailable(err)
		log.Warn("Kafka still unreachable; calls are refused audit_unavailable", "retry_in", min(wait*2, most), "err", err)
		wait = min(wait*2, most)
	}
}
