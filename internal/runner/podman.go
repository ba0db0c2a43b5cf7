package runner

import (
	"context"
	"fmt"
	"os"
	"syscall"

	"github.com/agentaudit/agentaudit/internal/sandbox"
)

// PodmanSandbox is the Sandbox of internal/sandbox: one rootless Podman
// container per session, confined by one profile.
type PodmanSandbox struct {
	c *sandbox.Client
	p *sandbox.Profile
	// uid is the host user the sandbox's processes run as (keep-id); -1
	// when unknown. A workspace it does not own is opened to it with ACLs
	// (sandbox.GrantWorkspace).
	uid int
}

// NewPodmanSandbox returns a Sandbox that starts containers with c under
// profile p. The profile must mount the workspace at /workspace, where the
// runner resolves paths.
func NewPodmanSandbox(c *sandbox.Client, p *sandbox.Profile) (*PodmanSandbox, error) {
	if p.Workspace != "" && p.Workspace != SandboxWorkspace {
		return nil, fmt.Errorf("%w: sandbox profile %s mounts the workspace at %s; the runner needs %s",
			ErrConfig, p.Name, p.Workspace, SandboxWorkspace)
	}
	return &PodmanSandbox{c: c, p: p, uid: -1}, nil
}

// grantWorkspace opens a workspace the sandbox user does not own to it, so
// writes inside the sandbox do not all fail with Permission denied. A
// runner that is not root can only do that for its own workspaces; for
// others it leaves the workspace as it is.
func (ps *PodmanSandbox) grantWorkspace(dir string) error {
	if ps.uid < 0 {
		return nil
	}
	var st syscall.Stat_t
	if err := syscall.Stat(dir, &st); err != nil {
		return fmt.Errorf("runner: workspace: %w", err)
	}
	if int(st.Uid) == ps.uid {
		return nil
	}
	if os.Geteuid() != 0 && int(st.Uid) != os.Geteuid() {
		return nil
	}
	return sandbox.GrantWorkspace(dir, ps.uid)
}

// Client returns the Podman client.
func (ps *PodmanSandbox) Client() *sandbox.Client { return ps.c }

// Start implements Sandbox.
func (ps *PodmanSandbox) Start(ctx context.Context, sessionID string, spec SandboxSpec) (SandboxSession, error) {
	var opts []sandbox.StartOption
	for _, m := range spec.Mounts {
		if !m.ReadOnly {
			return nil, fmt.Errorf("runner: extra mount %s → %s must be read-only", m.Source, m.Destination)
		}
		opts = append(opts, sandbox.WithReadOnlyBind(m.Source, m.Destination))
	}
	for k, v := range spec.Env {
		opts = append(opts, sandbox.WithEnv(k, v))
	}
	if spec.OTLPSocket != "" {
		opts = append(opts, sandbox.WithOTLPSocket(spec.OTLPSocket))
	}
	if spec.EgressSocket != "" {
		opts = append(opts, sandbox.WithEgressSocket(spec.EgressSocket))
	}
	if spec.Checker != nil {
		opts = append(opts, sandbox.WithExecChecker(spec.Checker))
	}
	if len(spec.Identify) > 0 {
		opts = append(opts, sandbox.WithIdentify(spec.Identify))
	}
	if spec.OnNotice != nil {
		opts = append(opts, sandbox.WithNoticeHandler(spec.OnNotice))
	}
	if err := ps.grantWorkspace(spec.Workspace); err != nil {
		return nil, err
	}
	s, err := ps.c.Start(ctx, sessionID, ps.p, spec.Workspace, opts...)
	if err != nil {
		return nil, err
	}
	return &podmanSession{s: s, p: ps.p}, nil
}

type podmanSession struct {
	s *sandbox.Session
	p *sandbox.Profile
}

// Raw returns the internal/sandbox session, for benchmarks.
func (ps *podmanSession) Raw() *sandbox.Session { return ps.s }

func (ps *podmanSession) Exec(ctx context.Context, req ExecRequest) (ExecResult, error) {
	r, err := ps.s.Exec(ctx, sandbox.ExecRequest{CallID: req.CallID, Argv: req.Argv, Cwd: req.Cwd, Env: req.Env,
		Timeout: req.Timeout, Background: req.Background})
	res := ExecResult{
		ExitCode: r.ExitCode,
		Stdout:   Stream{Data: r.Stdout, Length: uint64(max(r.StdoutLen, 0)), SHA256: r.StdoutSHA256},
		Stderr:   Stream{Data: r.Stderr, Length: uint64(max(r.StderrLen, 0)), SHA256: r.StderrSHA256},
		Duration: r.Duration, TimedOut: r.TimedOut, Killed: r.KilledReason, Signal: r.Signal,
		UserTime: r.UserTime, SystemTime: r.SystemTime, MaxRSSKB: r.MaxRSSKB,
		Leftovers: r.Leftovers, PidsLimit: r.PidsLimit,
	}
	for _, d := range r.Denied {
		res.Denied = append(res.Denied, DeniedExec{PID: d.PID, Argv: d.Argv, Reason: d.Reason})
	}
	return res, err
}

func (ps *podmanSession) Hold(ctx context.Context) error {
	_, err := ps.s.Hold(ctx)
	return err
}

func (ps *podmanSession) Release() error        { return ps.s.Release() }
func (ps *podmanSession) Done() <-chan struct{} { return ps.s.Done() }

func (ps *podmanSession) Info() SandboxInfo {
	return SandboxInfo{Profile: ps.p.Name, ProfileSHA256: ps.p.SHA256(), Image: ps.s.Image(), ImageID: ps.s.ImageID(),
		Background: ps.p.Background, Protected: ps.p.Protected(), InitPID: ps.s.SupervisorPID()}
}

func (ps *podmanSession) Close(ctx context.Context) error { return ps.s.Close(ctx) }

// Detach kills everything in the sandbox at once (see sandbox.Session.Detach).
func (ps *podmanSession) Detach() error { return ps.s.Detach() }
