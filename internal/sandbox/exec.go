package sandbox

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"os"
	"path"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/containers/podman/v5/pkg/api/handlers"
	"github.com/containers/podman/v5/pkg/bindings/containers"
)

// ExecRequest is one command to run in a session.
type ExecRequest struct {
	// CallID names the tool call; the supervisor attributes every exec
	// of the command's processes to it.
	CallID string
	// Background lets processes the command starts outlive it (a dev
	// server); they stay traced. Otherwise they are killed when it ends.
	Background bool
	// Untraced runs the command without tracing or exec checks. Only
	// benchmarks set it, to measure what tracing costs; the runner never
	// does.
	Untraced bool
	// PtraceOnly traces the command but checks nothing: benchmarks only,
	// for the kernel's share of what tracing costs.
	PtraceOnly bool
	// Argv is the command and its arguments; no shell is added.
	Argv []string
	// Cwd is the working directory: relative to the workspace, or absolute
	// inside it; empty means the workspace root.
	Cwd string
	// Env adds variables the profile's exec_env allows.
	Env map[string]string
	// Timeout bounds the run; 0 means the profile's exec_timeout. More than
	// the profile's max_exec_timeout is refused.
	Timeout time.Duration
	// Stdin, when not nil, is the command's standard input.
	Stdin []byte
}

// ExecResult is how a command ended. Stdout and Stderr hold at most the
// profile's output_limit bytes each; the lengths and hashes cover all of it.
type ExecResult struct {
	// ExitCode is the exit status; 128+n after signal n; -1 when unknown.
	ExitCode        int
	Stdout, Stderr  []byte
	StdoutLen       int64
	StderrLen       int64
	StdoutSHA256    string
	StderrSHA256    string
	StdoutTruncated bool
	StderrTruncated bool
	Duration        time.Duration
	// TimedOut is set when the request's time-out killed the command.
	TimedOut bool
	// KilledReason is "timeout", "cancelled" or "exec_denied" when the
	// sandbox killed it.
	KilledReason string
	// Signal is the signal that ended the command's first process, 0 if
	// it exited.
	Signal int
	// UserTime, SystemTime and MaxRSSKB are the command's rusage.
	UserTime, SystemTime time.Duration
	MaxRSSKB             int64
	// Leftovers is how many processes outlived the command and were killed.
	Leftovers int
	// PidsLimit: the command's processes reached the sandbox's process limit.
	PidsLimit bool
	// Denied lists the programs the runner refused to let start.
	Denied []DeniedExec
}

// DeniedExec is a program the exec check refused: it was killed before
// its first instruction.
type DeniedExec struct {
	PID    int
	Argv   []string
	Reason string
}

// PodmanExec runs req with a podman exec of its own, outside the
// supervisor: nothing it starts is traced or checked. It remains only as
// the baseline the runner benchmark compares the supervisor with. A command
// that runs past its time-out is killed and reported with TimedOut and a
// nil error. When ctx ends first the command is killed too, and the result
// comes back with KilledReason "cancelled" and an error wrapping ctx.Err().
func (s *Session) PodmanExec(ctx context.Context, req ExecRequest) (ExecResult, error) {
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
	cctx := s.c.call(context.WithoutCancel(ctx))
	id, err := containers.ExecCreate(cctx, s.ctrID, cfg)
	if err != nil {
		return res, sbxErr("exec", ReasonSandboxError, fmt.Errorf("%w: exec create in %s: %w", ErrPodman, s.name, err))
	}

	stdout := newCapture(int(s.profile.OutputLimit))
	stderr := newCapture(int(s.profile.OutputLimit))
	opts := new(containers.ExecStartAndAttachOptions).
		WithOutputStream(io.Writer(stdout)).WithAttachOutput(true).
		WithErrorStream(io.Writer(stderr)).WithAttachError(true)
	if req.Stdin != nil {
		opts = opts.WithInputStream(*bufio.NewReader(bytes.NewReader(req.Stdin))).WithAttachInput(true)
	}

	start := time.Now()
	done := make(chan error, 1)
	// ExecStartAndAttach ignores its context, hence the goroutine and the
	// watchdog below; the channel is buffered so a stream that never ends
	// leaks only this goroutine.
	go func() { done <- containers.ExecStartAndAttach(cctx, id, opts) }()

	timer := time.NewTimer(timeout)
	defer timer.Stop()
	var attachErr error
	finished := false
	select {
	case attachErr = <-done:
		finished = true
	case <-timer.C:
		res.TimedOut = true
		res.KilledReason = KilledTimeout
	case <-ctx.Done():
		res.KilledReason = KilledCancelled
	}
	if !finished {
		finished, attachErr = s.kill(id, done)
	}
	res.Duration = time.Since(start)

	insp, ierr := containers.ExecInspect(cctx, id, nil)
	switch {
	case ierr != nil:
		s.c.log.Warn("sandbox: exec inspect", "container", s.name, "exec", id, "err", ierr)
	case insp.Running:
		s.c.log.Warn("sandbox: exec still running after its stream closed", "container", s.name, "exec", id)
	default:
		res.ExitCode = insp.ExitCode
	}
	// A stream that outlived the kill is still being written: snapshot
	// under the capture's lock.
	res.Stdout, res.StdoutLen, res.StdoutSHA256, res.StdoutTruncated = stdout.result()
	res.Stderr, res.StderrLen, res.StderrSHA256, res.StderrTruncated = stderr.result()

	if res.KilledReason == KilledCancelled {
		return res, sbxErr("exec", ReasonTimeout, fmt.Errorf("sandbox: exec cancelled: %w", ctx.Err()))
	}
	if finished && attachErr != nil && res.KilledReason == "" {
		return res, sbxErr("exec", ReasonSandboxError, fmt.Errorf("%w: exec attach in %s: %w", ErrPodman, s.name, attachErr))
	}
	return res, nil
}

// execConfig checks req against the profile and builds the exec config.
func (s *Session) execConfig(req ExecRequest) (*handlers.ExecCreateConfig, time.Duration, error) {
	bad := func(reason, format string, args ...any) (*handlers.ExecCreateConfig, time.Duration, error) {
		return nil, 0, sbxErr("exec", reason, fmt.Errorf("%w: %s", ErrInvalidRequest, fmt.Sprintf(format, args...)))
	}
	if len(req.Argv) == 0 || req.Argv[0] == "" {
		return bad(ReasonInvalidArguments, "empty argv")
	}
	for _, a := range req.Argv {
		if strings.ContainsRune(a, 0) {
			return bad(ReasonInvalidArguments, "argv contains NUL")
		}
	}
	ws := s.profile.Workspace
	cwd := ws
	if req.Cwd != "" {
		c := req.Cwd
		if !path.IsAbs(c) {
			c = path.Join(ws, c)
		}
		c = path.Clean(c)
		if c != ws && !strings.HasPrefix(c, ws+"/") {
			return bad(ReasonPathOutsideWorkspace, "cwd %q is outside %s", req.Cwd, ws)
		}
		cwd = c
	}
	timeout := time.Duration(s.profile.ExecTimeout)
	if req.Timeout < 0 || req.Timeout > time.Duration(s.profile.MaxExecTimeout) {
		return bad(ReasonInvalidArguments, "timeout %v: want 0..%v", req.Timeout, time.Duration(s.profile.MaxExecTimeout))
	}
	if req.Timeout > 0 {
		timeout = req.Timeout
	}
	env := make([]string, 0, len(req.Env))
	for k, v := range req.Env {
		if !s.execEnv[k] {
			return bad(ReasonInvalidArguments, "env %q is not in the profile's exec_env", k)
		}
		if strings.ContainsRune(v, 0) {
			return bad(ReasonInvalidArguments, "env %s: value contains NUL", k)
		}
		env = append(env, k+"="+v)
	}
	sort.Strings(env)
	cfg := new(handlers.ExecCreateConfig)
	cfg.Cmd = req.Argv
	cfg.WorkingDir = cwd
	cfg.Env = env
	cfg.AttachStdout = true
	cfg.AttachStderr = true
	cfg.AttachStdin = req.Stdin != nil
	return cfg, timeout, nil
}

// kill ends a running exec and waits for its stream: first its process
// group, from the host; then, after the grace period, every process in the
// container but init. It reports whether the stream ended and how.
func (s *Session) kill(execID string, done <-chan error) (bool, error) {
	grace := s.c.grace
	ctx, cancel := context.WithTimeout(context.Background(), grace)
	defer cancel()
	pid := s.execPID(ctx, execID, done)
	if pid > 0 {
		if err := s.killGroup(ctx, pid); err != nil {
			s.c.log.Warn("sandbox: kill exec process group", "container", s.name, "exec", execID, "pid", pid, "err", err)
		}
	}
	select {
	case err := <-done:
		return true, err
	case <-time.After(grace):
	}
	// The group kill missed something (a process that left the group, or a
	// stream held open by an orphan): kill -1 from inside the container
	// reaches every process but PID 1 and the killer itself.
	s.c.log.Warn("sandbox: exec survived its group kill; killing every process in the container", "container", s.name, "exec", execID)
	kctx, kcancel := context.WithTimeout(context.Background(), grace)
	defer kcancel()
	if _, err := s.quickExec(kctx, "kill", "-KILL", "-1"); err != nil {
		s.c.log.Warn("sandbox: kill -1 in container", "container", s.name, "err", err)
	}
	select {
	case err := <-done:
		return true, err
	case <-time.After(grace):
		s.c.log.Error("sandbox: exec stream still open after kill; abandoning it", "container", s.name, "exec", execID)
		return false, nil
	}
}

// execPID waits for the exec to have a PID (a time-out may fire before the
// process started) and returns its host PID, or 0.
func (s *Session) execPID(ctx context.Context, execID string, done <-chan error) int {
	for {
		insp, err := containers.ExecInspect(s.c.call(ctx), execID, nil)
		if err == nil && insp.Pid > 0 && insp.Running {
			return insp.Pid
		}
		if err == nil && !insp.Running && insp.ExitCode != 0 {
			return 0
		}
		select {
		case <-ctx.Done():
			return 0
		case <-time.After(20 * time.Millisecond):
		}
		if len(done) > 0 {
			return 0
		}
	}
}

// killGroup SIGKILLs the process group led by host PID pid. runc makes an
// exec's process a session and group leader, so its PID is the group id.
// From the host that needs the runner to be root or the Podman user; when
// it is refused, the container's view of the PID is read from
// /proc/PID/status and the group is killed from inside.
func (s *Session) killGroup(ctx context.Context, pid int) error {
	// The exec may have ended since ExecInspect and its PID been reused on
	// the host: only a PID that lives in a nested PID namespace (the
	// container's) is signalled.
	if levels, err := pidLevels(pid); err == nil && levels < 2 {
		return fmt.Errorf("host pid %d is not in a container any more", pid)
	}
	err := syscall.Kill(-pid, syscall.SIGKILL)
	if err == nil || errors.Is(err, syscall.ESRCH) {
		return nil
	}
	nspid, perr := containerPID(pid)
	if perr != nil {
		return fmt.Errorf("host kill: %w; container pid: %w", err, perr)
	}
	if _, err := s.quickExec(ctx, "kill", "-KILL", "--", "-"+strconv.Itoa(nspid)); err != nil {
		return fmt.Errorf("kill from inside: %w", err)
	}
	return nil
}

// containerPID returns the innermost PID of host PID pid (NSpid's last field).
func containerPID(pid int) (int, error) {
	f, err := nsPIDs(pid)
	if err != nil {
		return 0, err
	}
	return strconv.Atoi(f[len(f)-1])
}

// pidLevels returns how many PID namespaces host PID pid is visible in.
func pidLevels(pid int) (int, error) {
	f, err := nsPIDs(pid)
	return len(f), err
}

func nsPIDs(pid int) ([]string, error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		return nil, err
	}
	for _, line := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, "NSpid:"); ok {
			if f := strings.Fields(rest); len(f) > 0 {
				return f, nil
			}
		}
	}
	return nil, errors.New("no NSpid line")
}

// quickExec runs a short helper command (no time-out of its own beyond ctx
// and the stream) and returns its exit code.
func (s *Session) quickExec(ctx context.Context, argv ...string) (int, error) {
	cctx := s.c.call(ctx)
	cfg := new(handlers.ExecCreateConfig)
	cfg.Cmd = argv
	id, err := containers.ExecCreate(cctx, s.ctrID, cfg)
	if err != nil {
		return -1, err
	}
	if err := containers.ExecStart(cctx, id, nil); err != nil {
		return -1, err
	}
	for {
		insp, err := containers.ExecInspect(cctx, id, nil)
		if err != nil {
			return -1, err
		}
		if !insp.Running && insp.Pid != 0 || !insp.Running && insp.ExitCode != 0 {
			return insp.ExitCode, nil
		}
		select {
		case <-ctx.Done():
			return -1, ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// capture keeps the first limit bytes written to it, and the length and
// sha256 of everything.
type capture struct {
	mu    sync.Mutex // an abandoned stream may still write during result
	limit int
	buf   []byte
	n     int64
	h     hash.Hash
}

func newCapture(limit int) *capture {
	return &capture{limit: limit, h: sha256.New()}
}

func (c *capture) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.n += int64(len(p))
	c.h.Write(p)
	if room := c.limit - len(c.buf); room > 0 {
		c.buf = append(c.buf, p[:min(room, len(p))]...)
	}
	return len(p), nil
}

func (c *capture) result() (data []byte, n int64, sum string, truncated bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return bytes.Clone(c.buf), c.n, hex.EncodeToString(c.h.Sum(nil)), c.n > int64(len(c.buf))
}

// RawExec runs argv in a container through the bare bindings round trip
// (create, start-and-attach, inspect) with no checks, caps or watchdog, and
// returns the exit code. It is the baseline benchmarks compare Exec with.
func (c *Client) RawExec(ctx context.Context, containerID string, argv ...string) (int, error) {
	cctx := c.call(ctx)
	cfg := new(handlers.ExecCreateConfig)
	cfg.Cmd = argv
	cfg.AttachStdout = true
	cfg.AttachStderr = true
	id, err := containers.ExecCreate(cctx, containerID, cfg)
	if err != nil {
		return -1, err
	}
	opts := new(containers.ExecStartAndAttachOptions).
		WithOutputStream(io.Discard).WithAttachOutput(true).
		WithErrorStream(io.Discard).WithAttachError(true)
	if err := containers.ExecStartAndAttach(cctx, id, opts); err != nil {
		return -1, err
	}
	insp, err := containers.ExecInspect(cctx, id, nil)
	if err != nil {
		return -1, err
	}
	return insp.ExitCode, nil
}
