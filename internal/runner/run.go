package runner

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"time"

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
	svc, err := Open(ctx, cfg)
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
	// IdleTimeout ends HTTP sessions without requests (default 30 minutes).
	IdleTimeout time.Duration
}

// Serve is `runner serve`: an MCP server with one sandbox session per MCP
// session, until ctx ends (or, on stdio, the client disconnects).
func Serve(ctx context.Context, cfg Config, so ServeOptions) error {
	if cfg.Workspace == "" {
		return fmt.Errorf("%w: --workspace: required", ErrConfig)
	}
	svc, err := Open(ctx, cfg)
	if err != nil {
		return err
	}
	defer svc.Close(context.WithoutCancel(ctx))
	m := NewMCPServer(svc.Runner, cfg.Workspace)
	switch so.Transport {
	case "stdio":
		return m.ServeStdio(ctx)
	case "http":
		host, _, err := net.SplitHostPort(so.Listen)
		if err != nil {
			return fmt.Errorf("%w: --listen: %v", ErrConfig, err)
		}
		if ip := net.ParseIP(host); ip == nil || !ip.IsLoopback() {
			return fmt.Errorf("%w: --listen: %q is not a loopback address", ErrConfig, so.Listen)
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
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Minute)
		defer cancel()
		_ = srv.Shutdown(sctx)
		return errors.Join(err, m.Close(sctx, events.EndShutdown))
	}
	return fmt.Errorf("%w: --mcp: %q (want stdio or http)", ErrConfig, so.Transport)
}
