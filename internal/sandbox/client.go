package sandbox

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"time"

	"github.com/agentaudit/agentaudit/internal/supervisor"
	"github.com/containers/podman/v5/pkg/bindings"
	"github.com/containers/podman/v5/pkg/bindings/containers"
	"github.com/containers/podman/v5/pkg/domain/entities/types"
	"github.com/containers/podman/v5/pkg/specgen"
)

// Labels every sandbox container carries.
const (
	LabelSession = "agentaudit.session"
	LabelRunner  = "agentaudit.runner"
	LabelProfile = "agentaudit.profile"
)

// Client talks to one Podman API service through the v5 bindings.
type Client struct {
	conn     context.Context // carries the bindings' connection; never cancelled
	log      *slog.Logger
	runnerID string
	image    string
	grace    time.Duration
	version  string
	sup      SupervisorConfig
}

// Option configures a Client.
type Option func(*Client)

// WithLogger sets the logger; the default discards.
func WithLogger(l *slog.Logger) Option { return func(c *Client) { c.log = l } }

// WithRunnerID sets the value of the agentaudit.runner label on every
// container this client starts; CleanupLeftovers matches on it.
func WithRunnerID(id string) Option { return func(c *Client) { c.runnerID = id } }

// WithImage sets the image used by profiles that name none.
func WithImage(ref string) Option { return func(c *Client) { c.image = ref } }

// WithKillGrace sets how long Exec waits, after killing a timed-out exec's
// process group, before it kills every process in the container and then
// gives up waiting for the stream (default 2s).
func WithKillGrace(d time.Duration) Option { return func(c *Client) { c.grace = d } }

// New connects to the Podman API at socketURI (unix:///run/user/999/podman/podman.sock).
// ctx bounds only the connection check; the client outlives it.
func New(ctx context.Context, socketURI string, opts ...Option) (*Client, error) {
	c := &Client{
		log:      slog.New(slog.NewTextHandler(io.Discard, nil)),
		runnerID: "runner",
		grace:    2 * time.Second,
	}
	for _, o := range opts {
		o(c)
	}
	// The bindings keep their connection in the context they return and
	// fail every later call once it is cancelled, so the connection gets a
	// context of its own and ctx only bounds the first ping.
	done := make(chan error, 1)
	go func() {
		conn, err := bindings.NewConnection(context.WithoutCancel(ctx), socketURI)
		c.conn = conn
		done <- err
	}()
	select {
	case err := <-done:
		if err != nil {
			return nil, sbxErr("connect", ReasonSandboxError, fmt.Errorf("%w: connect to %s: %w", ErrPodman, socketURI, err))
		}
	case <-ctx.Done():
		return nil, sbxErr("connect", ReasonSandboxError, fmt.Errorf("%w: connect to %s: %w", ErrPodman, socketURI, ctx.Err()))
	}
	c.version = bindings.ServiceVersion(c.conn).String()
	return c, nil
}

// ServerVersion is the Podman service's version, as it reported it.
func (c *Client) ServerVersion() string { return c.version }

// RunnerID is the value of the agentaudit.runner label this client sets.
func (c *Client) RunnerID() string { return c.runnerID }

// call returns a context that carries the bindings' connection from c.conn
// and the deadline and cancellation of ctx.
func (c *Client) call(ctx context.Context) context.Context {
	return connCtx{Context: ctx, conn: c.conn}
}

type connCtx struct {
	context.Context
	conn context.Context
}

func (c connCtx) Value(key any) any {
	if v := c.conn.Value(key); v != nil {
		return v
	}
	return c.Context.Value(key)
}

// StartOption adds per-session wiring to a container, beyond its profile.
type StartOption func(*startConfig)

type startConfig struct {
	binds        []bind
	env          map[string]string
	command      []string
	checker      supervisor.Checker
	onNotice     func(supervisor.Notice)
	egressSocket string
	otlpSocket   string
	identify     []string
}

type bind struct{ src, dst string }

// WithReadOnlyBind mounts the host path src read-only at dst inside the
// container (for example the egress bridge binary, or the directory of a
// per-session Unix socket: connecting to a socket works on a read-only mount).
func WithReadOnlyBind(src, dst string) StartOption {
	return func(s *startConfig) { s.binds = append(s.binds, bind{src, dst}) }
}

// WithEnv adds a variable to the container's environment for this session
// (for example the proxy's socket path); it overrides the profile's. An
// empty value sets the variable empty (NO_PROXY=), which is not the same
// as leaving it unset.
func WithEnv(key, value string) StartOption {
	return func(s *startConfig) {
		if s.env == nil {
			s.env = map[string]string{}
		}
		s.env[key] = value
	}
}

// Session is one running sandbox container.
type Session struct {
	c         *Client
	id        string
	ctrID     string
	name      string
	profile   *Profile
	image     string
	imageID   string
	workspace string
	protected []string
	execEnv   map[string]bool
	conn      *supervisor.Conn
	sockets   *supervisor.Listener
	initPID   int

	mu     sync.Mutex
	closed bool
}

// ID is the session id the container is labelled with.
func (s *Session) ID() string { return s.id }

// ContainerID is the Podman container's id.
func (s *Session) ContainerID() string { return s.ctrID }

// Name is the Podman container's name.
func (s *Session) Name() string { return s.name }

// Profile is the profile the session was started with.
func (s *Session) Profile() *Profile { return s.profile }

// Image is the image reference; ImageID the local image id it resolved to.
func (s *Session) Image() string   { return s.image }
func (s *Session) ImageID() string { return s.imageID }

// SupervisorPID is the host pid of the sandbox's PID 1, its supervisor.
func (s *Session) SupervisorPID() int { return s.initPID }

// Workspace is the host workspace directory, symlinks resolved.
func (s *Session) Workspace() string { return s.workspace }

// Protected lists the workspace-relative paths mounted read-only, sorted.
func (s *Session) Protected() []string { return append([]string(nil), s.protected...) }

var unsafeName = regexp.MustCompile(`[^a-zA-Z0-9_.-]+`)

// Start creates and starts the session's container from profile p with
// workspaceDir (a host directory the Podman user can read and write; see
// PrepareWorkspace) mounted at p.Workspace.
func (c *Client) Start(ctx context.Context, sessionID string, p *Profile, workspaceDir string, opts ...StartOption) (*Session, error) {
	if p == nil || p.sha == "" {
		return nil, sbxErr("start", ReasonInvalidArguments, fmt.Errorf("%w: profile not built by ParseProfile", ErrInvalidProfile))
	}
	if sessionID == "" {
		return nil, sbxErr("start", ReasonInvalidArguments, errors.New("sandbox: empty session id"))
	}
	var sc startConfig
	for _, o := range opts {
		o(&sc)
	}
	image := p.Image
	if image == "" {
		image = c.image
	}
	if image == "" {
		return nil, sbxErr("start", ReasonInvalidArguments, fmt.Errorf("%w: no image in the profile and no WithImage", ErrInvalidProfile))
	}
	ws, err := filepath.Abs(workspaceDir)
	if err == nil {
		ws, err = filepath.EvalSymlinks(ws)
	}
	if err != nil {
		return nil, sbxErr("start", ReasonSandboxError, fmt.Errorf("%w: %w", ErrWorkspace, err))
	}
	prot, err := expandProtected(ws, p.Protected())
	if err != nil {
		return nil, sbxErr("start", ReasonSandboxError, fmt.Errorf("%w: %w", ErrWorkspace, err))
	}
	if err := checkMountable(ws, prot); err != nil {
		return nil, sbxErr("start", ReasonSandboxError, fmt.Errorf("%w: %w", ErrWorkspace, err))
	}
	for _, b := range sc.binds {
		if !filepath.IsAbs(b.src) || !path.IsAbs(b.dst) || path.Clean(b.dst) != b.dst || b.dst == "/" ||
			b.dst == p.Workspace || strings.HasPrefix(b.dst, p.Workspace+"/") {
			return nil, sbxErr("start", ReasonInvalidArguments, fmt.Errorf("sandbox: bind %s:%s: want absolute paths, the target outside %s", b.src, b.dst, p.Workspace))
		}
	}
	for k, v := range sc.env {
		if !envKeyRE.MatchString(k) {
			return nil, sbxErr("start", ReasonInvalidArguments, fmt.Errorf("sandbox: env %q: not a variable name", k))
		}
		if strings.ContainsRune(v, 0) {
			return nil, sbxErr("start", ReasonInvalidArguments, fmt.Errorf("sandbox: env %s: value contains NUL", k))
		}
	}
	if c.sup.Binary == "" || c.sup.SocketRoot == "" {
		return nil, sbxErr("start", ReasonInvalidArguments, ErrNoSupervisor)
	}
	if _, err := os.Stat(c.sup.Binary); err != nil {
		return nil, sbxErr("start", ReasonSandboxError, fmt.Errorf("sandbox: supervisor binary: %w", err))
	}
	if strings.ContainsRune(sc.egressSocket, 0) || (sc.egressSocket != "" && !path.IsAbs(sc.egressSocket)) {
		return nil, sbxErr("start", ReasonInvalidArguments, fmt.Errorf("sandbox: egress socket %q: want an absolute path", sc.egressSocket))
	}
	if strings.ContainsRune(sc.otlpSocket, 0) || (sc.otlpSocket != "" && !path.IsAbs(sc.otlpSocket)) {
		return nil, sbxErr("start", ReasonInvalidArguments, fmt.Errorf("sandbox: OTLP socket %q: want an absolute path", sc.otlpSocket))
	}
	suffix := make([]byte, 3)
	_, _ = rand.Read(suffix)
	name := "agentaudit-" + strings.Trim(unsafeName.ReplaceAllString(sessionID, "_"), "_.-")
	if len(name) > 60 {
		name = name[:60]
	}
	name += "-" + hex.EncodeToString(suffix)

	// The supervisor's socket: a directory private to the session,
	// mounted read-only (connecting needs no write access), and the
	// binary itself, read-only.
	ln, err := supervisor.Listen(filepath.Join(c.sup.SocketRoot, name), c.sup.UID, c.sup.GID)
	if err != nil {
		return nil, sbxErr("start", ReasonSandboxError, err)
	}
	sc.binds = append(sc.binds, bind{ln.Dir(), supervisor.ContainerDir}, bind{c.sup.Binary, supervisor.ContainerBinary})
	sc.command = supervisorCommand(sc)

	spec := c.spec(name, sessionID, image, p, ws, prot, sc)
	cctx := c.call(ctx)
	created, err := c.create(cctx, spec)
	if err != nil {
		ln.Close()
		return nil, sbxErr("start", ReasonSandboxError, fmt.Errorf("%w: create container from %s: %w", ErrPodman, image, err))
	}
	s := &Session{
		c: c, id: sessionID, ctrID: created.ID, name: name, profile: p, image: image,
		workspace: ws, protected: prot.paths, execEnv: map[string]bool{}, sockets: ln,
	}
	for _, k := range p.ExecEnv {
		s.execEnv[k] = true
	}
	fail := func(err error) (*Session, error) {
		ln.Close()
		s.remove(context.WithoutCancel(ctx))
		return nil, sbxErr("start", ReasonSandboxError, err)
	}
	if err := containers.Start(cctx, created.ID, nil); err != nil {
		return fail(fmt.Errorf("%w: start container %s: %w", ErrPodman, name, err))
	}
	insp, err := containers.Inspect(cctx, created.ID, nil)
	if err != nil {
		return fail(fmt.Errorf("%w: inspect %s: %w", ErrPodman, name, err))
	}
	s.imageID = insp.Image
	initPID := 0
	if insp.State != nil {
		initPID = insp.State.Pid
	}
	if initPID == 0 {
		return fail(fmt.Errorf("%w: container %s has no init pid (state %v)", ErrPodman, name, insp.State))
	}
	// Only the container's PID 1 may speak for the sandbox.
	actx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	nproc := int(p.Rlimits.NProc)
	conn, err := ln.Accept(actx, func() int { return initPID }, checkerOrDeny(sc.checker),
		supervisor.WithLogger(c.log), supervisor.WithNProc(nproc), supervisor.WithNoticeHandler(sc.onNotice),
		supervisor.WithIdentify(sc.identify))
	if err != nil {
		return fail(fmt.Errorf("sandbox %s: %w", name, err))
	}
	s.conn, s.initPID = conn, initPID
	c.log.Info("sandbox: session started", "session", sessionID, "container", name, "image", image,
		"protected", len(prot.paths), "supervisor_pid", initPID)
	return s, nil
}

// checkerOrDeny refuses every exec when no checker was given: a sandbox
// nobody rules on runs nothing.
func checkerOrDeny(ch supervisor.Checker) supervisor.Checker {
	if ch != nil {
		return ch
	}
	return supervisor.CheckerFunc(func(context.Context, *supervisor.Check) supervisor.Verdict {
		return supervisor.Verdict{Allow: false, Reason: "no_exec_checker"}
	})
}

// Close removes the session's container and everything running in it. It
// is safe to call more than once.
func (s *Session) Close(ctx context.Context) error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	s.mu.Unlock()
	// Removing the container kills the supervisor and everything under
	// it; its connection and socket directory go after.
	err := s.remove(ctx)
	if s.conn != nil {
		s.conn.Close()
	}
	if s.sockets != nil {
		s.sockets.Close()
	}
	if err != nil {
		return sbxErr("close", ReasonSandboxError, err)
	}
	s.c.log.Info("sandbox: session closed", "session", s.id, "container", s.name)
	return nil
}

// remove force-removes the container. A container whose PID 1 is exiting
// at that moment is refused as "state improper" by Podman 4.3; it is tried
// again until it has settled.
func (s *Session) remove(ctx context.Context) error {
	var err error
	for try := 0; try < 5; try++ {
		_, err = containers.Remove(s.c.call(ctx), s.ctrID, new(containers.RemoveOptions).WithForce(true).WithTimeout(0).WithVolumes(true))
		if err == nil || !strings.Contains(err.Error(), "state improper") {
			break
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%w: remove container %s: %w", ErrPodman, s.name, err)
		case <-time.After(200 * time.Millisecond):
		}
	}
	if err != nil {
		return fmt.Errorf("%w: remove container %s: %w", ErrPodman, s.name, err)
	}
	return nil
}

// Leftover is a container CleanupLeftovers removed: a sandbox whose runner
// died.
type Leftover struct {
	Name    string // the container's name
	Session string // the session it served (its agentaudit.session label)
}

// CleanupLeftovers removes every container labelled with runnerID as its
// agentaudit.runner (left by a runner that died), and returns them. Call it
// when a runner starts, before it opens sessions; the sessions it names
// ended without their runner.
func (c *Client) CleanupLeftovers(ctx context.Context, runnerID string) ([]Leftover, error) {
	if runnerID == "" {
		return nil, sbxErr("cleanup", ReasonInvalidArguments, errors.New("sandbox: empty runner id"))
	}
	cctx := c.call(ctx)
	list, err := containers.List(cctx, new(containers.ListOptions).WithAll(true).
		WithFilters(map[string][]string{"label": {LabelRunner + "=" + runnerID}}))
	if err != nil {
		return nil, sbxErr("cleanup", ReasonSandboxError, fmt.Errorf("%w: list containers: %w", ErrPodman, err))
	}
	var removed []Leftover
	var errs []error
	for _, ctr := range list {
		// The filter already matched; checking again keeps a server that
		// ignores filters from removing someone else's container.
		if ctr.Labels[LabelRunner] != runnerID || ctr.Labels[LabelSession] == "" {
			continue
		}
		name := ctr.ID
		if len(ctr.Names) > 0 {
			name = ctr.Names[0]
		}
		if _, err := containers.Remove(cctx, ctr.ID, new(containers.RemoveOptions).WithForce(true).WithTimeout(0)); err != nil {
			errs = append(errs, fmt.Errorf("%w: remove %s: %w", ErrPodman, name, err))
			continue
		}
		removed = append(removed, Leftover{Name: name, Session: ctr.Labels[LabelSession]})
		c.log.Info("sandbox: removed leftover container", "container", name, "session", ctr.Labels[LabelSession])
	}
	if err := errors.Join(errs...); err != nil {
		return removed, sbxErr("cleanup", ReasonSandboxError, err)
	}
	return removed, nil
}

// create creates the container, trying again with back-off when Podman
// fails to read the sandbox user's subordinate ids. The rootless service
// reads them at every create, and under concurrent creates it has
// answered "cannot read subids" (reported to the client as "keep-id
// requires additional UIDs or GIDs") while /etc/subuid and /etc/subgid
// were intact; the next create succeeds.
func (c *Client) create(ctx context.Context, spec *specgen.SpecGenerator) (types.ContainerCreateResponse, error) {
	wait := 50 * time.Millisecond
	for attempt := 1; ; attempt++ {
		created, err := containers.CreateWithSpec(ctx, spec, nil)
		if err == nil || attempt == createAttempts || !subIDReadFailed(err) {
			return created, err
		}
		c.log.Warn("sandbox: podman could not read the subordinate ids; creating again", "attempt", attempt, "err", err)
		select {
		case <-time.After(wait):
		case <-ctx.Done():
			return created, err
		}
		wait *= 2
	}
}

// createAttempts bounds create's tries.
const createAttempts = 4

// subIDReadFailed reports whether a create failed on reading the
// subordinate ids, as create retries.
func subIDReadFailed(err error) bool {
	msg := err.Error()
	return strings.Contains(msg, "keep-id requires additional UIDs or GIDs") || strings.Contains(msg, "cannot read subids")
}
