package supervisor

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"time"

	"golang.org/x/sys/unix"
)

// Config is what the supervisor needs to start.
type Config struct {
	// Socket is the runner's Unix socket, bind-mounted into the sandbox.
	Socket string
	// DialTimeout bounds the wait for the socket to accept (default 10s).
	DialTimeout time.Duration
	// Serve, when set, runs beside the supervisor until it stops (the
	// egress bridge); its error is logged, not fatal.
	Serve func(ctx context.Context) error
	Log   *slog.Logger
}

// Run is the supervisor's main loop: connect, hello, run calls until the
// runner goes away or ctx ends, then kill every traced process. It returns
// nil when the runner closed the connection in order.
func Run(ctx context.Context, cfg Config) error {
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	if cfg.DialTimeout == 0 {
		cfg.DialTimeout = 10 * time.Second
	}
	// Nothing in the sandbox may ptrace the supervisor, read its memory or
	// its file descriptors: all need the target to be dumpable.
	if err := unix.Prctl(unix.PR_SET_DUMPABLE, 0, 0, 0, 0); err != nil {
		return fmt.Errorf("supervisor: prctl(PR_SET_DUMPABLE): %w", err)
	}
	// Outside a PID namespace (tests), orphans still come back to us.
	if os.Getpid() != 1 {
		_ = unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)
	}
	conn, err := dialRetry(ctx, cfg.Socket, cfg.DialTimeout)
	if err != nil {
		return err
	}
	defer conn.Close()
	w := newWire(conn)
	if err := w.write(&Msg{Type: MsgHello, Hello: &Hello{Version: ProtocolVersion, PID: os.Getpid(), UID: os.Getuid()}}); err != nil {
		return fmt.Errorf("supervisor: hello: %w", err)
	}
	m, err := w.read()
	if err != nil {
		return fmt.Errorf("supervisor: waiting for welcome: %w", err)
	}
	if m.Type != MsgWelcome || m.Welcome == nil || m.Welcome.Version != ProtocolVersion {
		return fmt.Errorf("supervisor: runner answered %q (version %v), want welcome version %d", m.Type, m.Welcome, ProtocolVersion)
	}

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	if cfg.Serve != nil {
		go func() {
			if err := cfg.Serve(ctx); err != nil && ctx.Err() == nil {
				cfg.Log.Warn("supervisor: side service stopped", "err", err)
			}
		}()
	}
	t := newTracer(w, m.Welcome, cfg.Log)
	traced := make(chan error, 1)
	go func() { traced <- t.loop(ctx) }()

	readErr := make(chan error, 1)
	go func() { readErr <- t.readLoop(w) }()
	select {
	case err = <-readErr:
		// The runner is gone (or spoke nonsense): nothing may run on
		// unobserved.
		cancel()
		<-traced
		if errors.Is(err, io.EOF) {
			return nil
		}
		return fmt.Errorf("supervisor: runner connection: %w", err)
	case err = <-traced:
		cancel()
		return err
	}
}

func dialRetry(ctx context.Context, path string, timeout time.Duration) (net.Conn, error) {
	deadline := time.Now().Add(timeout)
	for {
		c, err := net.DialTimeout("unix", path, time.Second)
		if err == nil {
			return c, nil
		}
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("supervisor: connect to runner at %s: %w", path, err)
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// readLoop hands the runner's frames to the tracer until the connection
// ends.
func (t *tracer) readLoop(w *wire) error {
	for {
		m, err := w.read()
		if err != nil {
			return err
		}
		switch m.Type {
		case MsgExec:
			if m.Exec == nil {
				return fmt.Errorf("%w: exec without body", ErrFrame)
			}
			x := m.Exec
			t.do(func() { t.start(x) })
		case MsgCancel:
			if m.Cancel != nil {
				id := m.Cancel.ID
				t.do(func() { t.killCall(id, killCancelled) })
			}
		case MsgVerdict:
			if m.Verdict == nil {
				return fmt.Errorf("%w: verdict without body", ErrFrame)
			}
			v := *m.Verdict
			t.do(func() { t.verdict(v) })
		case MsgHold:
			t.do(t.hold)
		case MsgRelease:
			t.do(t.release)
		default:
			return fmt.Errorf("%w: unexpected %q from the runner", ErrFrame, m.Type)
		}
	}
}

// Kill reasons of Exit.Killed.
const (
	killTimeout    = "timeout"
	killCancelled  = "cancelled"
	killExecDenied = "exec_denied"
)

// doorbellEnv marks the supervisor binary started as the tracer's doorbell.
const doorbellEnv = "AGENTAUDIT_SUPERVISOR_DOORBELL"

// Doorbell reports whether this process was started as the supervisor's
// doorbell, and if so never returns: it waits for signals, which its
// tracer intercepts. The supervisor's main calls it first.
func Doorbell() {
	if os.Getenv(doorbellEnv) != "1" {
		return
	}
	for {
		_ = unix.Pause()
	}
}
