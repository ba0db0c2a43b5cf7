package sandbox

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/agentaudit/agentaudit/internal/supervisor"
)

// SupervisorConfig says where the sandbox supervisor comes from and where
// its per-session sockets live.
type SupervisorConfig struct {
	// Binary is the host path of cmd/sandbox-supervisor (static; see
	// BuildSupervisor), readable and executable by the Podman user.
	Binary string
	// SocketRoot holds one private directory per session with the socket
	// the supervisor connects to. It and its ancestors must be searchable
	// by UID (mode 0711 or wider).
	SocketRoot string
	// UID and GID own the session directories (the rootless Podman user);
	// -1 leaves them to the caller's user.
	UID, GID int
}

// WithSupervisor sets the supervisor every session runs as PID 1. Start
// refuses to run without one.
func WithSupervisor(sc SupervisorConfig) Option { return func(c *Client) { c.sup = sc } }

// WithExecChecker rules on every exec inside the session (see
// supervisor.Checker); without one every exec is refused.
func WithExecChecker(ch supervisor.Checker) StartOption {
	return func(s *startConfig) { s.checker = ch }
}

// WithNoticeHandler receives the supervisor's notices (leftover processes
// killed, internal failures).
func WithNoticeHandler(f func(supervisor.Notice)) StartOption {
	return func(s *startConfig) { s.onNotice = f }
}

// WithIdentify names the programs whose copies the supervisor recognises
// by content (see supervisor.Welcome.Identify).
func WithIdentify(names []string) StartOption {
	return func(s *startConfig) { s.identify = append(s.identify, names...) }
}

// WithEgressSocket makes the supervisor serve the egress bridge to the
// proxy socket at containerPath (mounted with WithReadOnlyBind).
func WithEgressSocket(containerPath string) StartOption {
	return func(s *startConfig) { s.egressSocket = containerPath }
}

// WithOTLPSocket makes the supervisor relay the sandbox's OTLP port
// (127.0.0.1:4318 inside) to the runner's receiver at containerPath, so an
// agent exports its own telemetry without any network.
func WithOTLPSocket(containerPath string) StartOption {
	return func(s *startConfig) { s.otlpSocket = containerPath }
}

// supervisorCommand is the container's PID 1.
func supervisorCommand(sc startConfig) []string {
	argv := []string{supervisor.ContainerBinary, "--socket", supervisor.ContainerDir + "/" + supervisor.SocketName}
	if sc.egressSocket != "" {
		argv = append(argv, "--egress-socket", sc.egressSocket)
	}
	if sc.otlpSocket != "" {
		argv = append(argv, "--otlp-socket", sc.otlpSocket)
	}
	return argv
}

// Exec runs req through the session's supervisor: every program it starts
// is checked before it runs (see WithExecChecker), its whole process tree
// is killed at the time-out, and processes that outlive it are killed
// unless req.Background. A command that runs past its time-out is reported
// with TimedOut and a nil error. When ctx ends first the command is killed
// too, and the result comes back with KilledReason "cancelled" and an error
// wrapping ctx.Err(). Requests that break the profile are refused with
// ErrInvalidRequest before anything runs.
func (s *Session) Exec(ctx context.Context, req ExecRequest) (ExecResult, error) {
	res := ExecResult{ExitCode: -1}
	s.mu.Lock()
	closed := s.closed
	s.mu.Unlock()
	if closed {
		return res, sbxErr("exec", ReasonSandboxError, ErrClosed)
	}
	cfg, timeout, err := s.execConfig(req)
	if err != nil {
		return res, err
	}
	r, err := s.conn.Run(ctx, supervisor.Request{
		CallID: req.CallID, Argv: cfg.Cmd, Cwd: cfg.WorkingDir, Env: cfg.Env, Stdin: req.Stdin,
		Timeout: timeout, OutputLimit: int(s.profile.OutputLimit),
		CPUSeconds: uint64(time.Duration(s.profile.Rlimits.CPU) / time.Second), Background: req.Background,
		Untraced: req.Untraced, PtraceOnly: req.PtraceOnly,
	})
	if err != nil {
		return res, sbxErr("exec", ReasonSandboxError, fmt.Errorf("supervisor: %w", err))
	}
	res.ExitCode = r.ExitCode
	res.Stdout, res.StdoutLen, res.StdoutSHA256 = r.Stdout, r.Exit.Stdout.Length, r.Exit.Stdout.SHA256
	res.Stderr, res.StderrLen, res.StderrSHA256 = r.Stderr, r.Exit.Stderr.Length, r.Exit.Stderr.SHA256
	res.StdoutTruncated = res.StdoutLen > int64(len(res.Stdout))
	res.StderrTruncated = res.StderrLen > int64(len(res.Stderr))
	res.Duration = time.Duration(r.DurationUS) * time.Microsecond
	res.Signal, res.Leftovers, res.PidsLimit = r.Signal, r.Leftovers, r.PidsLimit
	res.UserTime = time.Duration(r.UserUS) * time.Microsecond
	res.SystemTime = time.Duration(r.SystemUS) * time.Microsecond
	res.MaxRSSKB = r.MaxRSSKB
	res.KilledReason = r.Killed
	res.TimedOut = r.Killed == KilledTimeout
	for _, d := range r.Denied {
		res.Denied = append(res.Denied, DeniedExec{PID: d.PID, Argv: d.Argv, Reason: d.Reason})
	}
	if r.Error != "" {
		// The command could not start (not found, not executable).
		res.Stderr = append(res.Stderr, r.Error+"\n"...)
		res.StderrLen = int64(len(res.Stderr))
	}
	if res.KilledReason == KilledCancelled {
		return res, sbxErr("exec", ReasonTimeout, fmt.Errorf("sandbox: exec cancelled: %w", ctx.Err()))
	}
	return res, nil
}

// Hold stops every process in the session until Release; it returns how
// many it stopped.
func (s *Session) Hold(ctx context.Context) (int, error) {
	n, err := s.conn.Hold(ctx)
	if err != nil {
		return n, sbxErr("hold", ReasonSandboxError, err)
	}
	return n, nil
}

// Release lets a held session's processes run again.
func (s *Session) Release() error {
	if err := s.conn.Release(); err != nil {
		return sbxErr("release", ReasonSandboxError, err)
	}
	return nil
}

// Done is closed when the supervisor's connection ends: the sandbox is
// gone (its supervisor died, or the session was closed). Err says why.
func (s *Session) Done() <-chan struct{} { return s.conn.Done() }

// Err is why the supervisor's connection ended, nil while it is up.
func (s *Session) Err() error { return s.conn.Err() }

// ErrNoSupervisor: Start was called on a client without WithSupervisor.
var ErrNoSupervisor = errors.New("sandbox: no supervisor configured (WithSupervisor)")
