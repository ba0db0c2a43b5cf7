package runner

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/user"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/agentaudit/agentaudit/internal/approvals/signing"
	"github.com/agentaudit/agentaudit/internal/eventlog"
	"github.com/agentaudit/agentaudit/internal/netpol"
	"github.com/agentaudit/agentaudit/internal/policy"
	"github.com/agentaudit/agentaudit/internal/sandbox"
)

// Config is the runner binary's configuration. Fields tagged env are read
// from the environment (names follow .testenv/env); flag fields come from
// the command line. Validate fills defaults and names the bad field.
type Config struct {
	KafkaBrokers []string `env:"KAFKA_BROKERS"`
	PodmanSocket string   `env:"PODMAN_SOCKET"`
	SandboxImage string   `env:"SANDBOX_IMAGE"`
	RunnerID     string   `env:"RUNNER_ID"`
	// NodeID is the snowflake node (0–999) of this runner's event ids.
	// Deployments assign one per runner; when empty it is derived from
	// RUNNER_ID, which two runners can share by chance. 1000–1023 are
	// reserved for the services (approvals, detect, ingest tools).
	NodeID          string        `env:"RUNNER_NODE_ID"`
	Tenant          string        `env:"RUNNER_TENANT"`
	Operator        string        `env:"RUNNER_OPERATOR"`
	ApprovalKeys    string        `env:"APPROVAL_KEYS"`
	ApprovalTimeout time.Duration `env:"APPROVAL_TIMEOUT"`
	SpoolDir        string        `env:"SPOOL_DIR"`
	AckTimeout      time.Duration `env:"AUDIT_ACK_TIMEOUT"`
	TopicEvents     string        `env:"AUDIT_TOPIC_EVENTS"`
	TopicApprovals  string        `env:"AUDIT_TOPIC_APPROVALS"`
	TopicDLQ        string        `env:"AUDIT_TOPIC_DLQ"`

	PolicyFile  string `flag:"policy"`
	ProfileFile string `flag:"profile"`
	Workspace   string `flag:"workspace"`

	// EgressPolicy is the egress policy file (netpol YAML). When it is
	// empty egress stays off: no proxy, no bridge, and the sandbox has no
	// network at all (network mode none: only its own loopback).
	EgressPolicy string `env:"EGRESS_POLICY" flag:"egress-policy"`
	// EgressSocketRoot holds one private directory per session with the
	// proxy's Unix socket (default /run/agentaudit/egress). It and the
	// directories the runner creates above it get mode 0711, so the
	// Podman user can reach its session's directory but list none.
	EgressSocketRoot string `env:"EGRESS_SOCKET_ROOT"`
	// Supervisor is the sandbox-supervisor binary, every sandbox's PID 1,
	// mounted read-only. Default: sandbox-supervisor next to the runner
	// binary (`make build` puts both in bin/); else it is built from this
	// module's source into SANDBOX_SOCKET_ROOT/.bin.
	Supervisor string `env:"SANDBOX_SUPERVISOR"`
	// SocketRoot holds one private directory per session with the socket
	// the sandbox's supervisor connects to (default
	// /run/agentaudit/sandbox); mode 0711 like EGRESS_SOCKET_ROOT.
	SocketRoot string `env:"SANDBOX_SOCKET_ROOT"`
	// LockDir holds one lock per live runner id on this host, so two
	// runners never share one (default /run/agentaudit/runners as root,
	// else agentaudit-runners-UID in the temporary directory).
	LockDir string `env:"RUNNER_LOCK_DIR"`
	// PodmanUID is the host uid the sandbox's processes run as (the
	// rootless Podman user, keep-id); the socket directories belong to
	// it. Default: the owner of the Podman socket when the runner is
	// root, else the runner's own user.
	PodmanUID string `env:"PODMAN_UID"`
	// EgressResolver resolves the proxy's host names (default the
	// system resolver). For tests.
	EgressResolver netpol.Resolver `env:"-"`
	// EgressCredentials are secrets the egress proxy adds to requests for
	// their destinations (runner agent: the model API key), so the
	// sandbox never holds them.
	EgressCredentials []netpol.Credential `env:"-"`
	// Profile, when set, is the sandbox profile instead of ProfileFile
	// (runner agent: the agent's profile).
	Profile *sandbox.Profile `env:"-"`

	Logger *slog.Logger `env:"-"`

	node     int64 // parsed NodeID, -1 when derived
	uid, gid int   // sandbox user, -1 when the runner's own
	// runnerIDDefault: RunnerID was not given and defaults to runner-<host>.
	runnerIDDefault bool
}

var runnerIDPattern = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._:@/+=-]{0,127}$`)
var tenantPattern = regexp.MustCompile(`^[a-z0-9][a-z0-9._-]{0,63}$`)

// Validate fills defaults and checks every field; the error names the
// first bad field by its environment variable or flag.
func (c *Config) Validate() error {
	bad := func(field, format string, args ...any) error {
		return fmt.Errorf("%w: %s: %s", ErrConfig, field, fmt.Sprintf(format, args...))
	}
	c.node = -1
	if c.NodeID != "" {
		n, err := strconv.ParseInt(c.NodeID, 10, 64)
		if err != nil || n < 0 || n > maxRunnerNode {
			return bad("RUNNER_NODE_ID", "%q: a whole number from 0 to %d", c.NodeID, maxRunnerNode)
		}
		c.node = n
	}
	var brokers []string
	for _, b := range c.KafkaBrokers {
		for _, s := range strings.Split(b, ",") {
			if s = strings.TrimSpace(s); s != "" {
				brokers = append(brokers, s)
			}
		}
	}
	c.KafkaBrokers = brokers
	if len(c.KafkaBrokers) == 0 {
		return bad("KAFKA_BROKERS", "required (host:port[,host:port…])")
	}
	if c.PodmanSocket == "" {
		return bad("PODMAN_SOCKET", "required (unix:///run/user/UID/podman/podman.sock)")
	}
	if !strings.Contains(c.PodmanSocket, "://") {
		c.PodmanSocket = "unix://" + c.PodmanSocket
	}
	if c.RunnerID == "" {
		c.runnerIDDefault = true
		host, _ := os.Hostname()
		c.RunnerID = "runner-" + strings.Map(func(r rune) rune {
			if r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '.' {
				return r
			}
			return '-'
		}, orDefault(host, "localhost"))
	}
	if !runnerIDPattern.MatchString(c.RunnerID) {
		return bad("RUNNER_ID", "%q: letters, digits and . _ : @ / + = -, at most 128", c.RunnerID)
	}
	if c.Tenant == "" {
		c.Tenant = "default"
	}
	if !tenantPattern.MatchString(c.Tenant) {
		return bad("RUNNER_TENANT", "%q: lower-case letters, digits, . _ -, at most 64", c.Tenant)
	}
	if c.Operator == "" {
		if u, err := user.Current(); err == nil {
			c.Operator = u.Username
		}
	}
	if len(c.Operator) > 256 {
		return bad("RUNNER_OPERATOR", "longer than 256 bytes")
	}
	if c.ApprovalTimeout == 0 {
		c.ApprovalTimeout = 15 * time.Minute
	}
	if c.ApprovalTimeout < 0 {
		return bad("APPROVAL_TIMEOUT", "must be positive")
	}
	if c.ApprovalKeys != "" {
		if _, err := os.Stat(c.ApprovalKeys); err != nil {
			return bad("APPROVAL_KEYS", "%v", err)
		}
	}
	if c.AckTimeout == 0 {
		c.AckTimeout = 3 * time.Second
	}
	if c.AckTimeout < 0 {
		return bad("AUDIT_ACK_TIMEOUT", "must be positive")
	}
	if c.SpoolDir == "" {
		base, err := os.UserCacheDir()
		if err != nil {
			base = os.TempDir()
		}
		c.SpoolDir = filepath.Join(base, "agentaudit", "spool", strings.ReplaceAll(c.RunnerID, "/", "_"))
	}
	c.TopicEvents = orDefault(c.TopicEvents, eventlog.DefaultTopics.Events)
	c.TopicApprovals = orDefault(c.TopicApprovals, eventlog.DefaultTopics.Approvals)
	c.TopicDLQ = orDefault(c.TopicDLQ, eventlog.DefaultTopics.DLQ)
	if err := c.validateSandbox(bad); err != nil {
		return err
	}
	if err := c.validateEgress(bad); err != nil {
		return err
	}
	for _, f := range []struct{ name, path string }{{"--policy", c.PolicyFile}, {"--profile", c.ProfileFile}} {
		if f.path != "" {
			if _, err := os.Stat(f.path); err != nil {
				return bad(f.name, "%v", err)
			}
		}
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	return nil
}

// Default roots of the per-session socket directories.
const (
	DefaultEgressSocketRoot = "/run/agentaudit/egress"
	DefaultSocketRoot       = "/run/agentaudit/sandbox"
	DefaultLockDir          = "/run/agentaudit/runners"
)

func (c *Config) validateEgress(bad func(field, format string, args ...any) error) error {
	if c.EgressPolicy == "" {
		return nil
	}
	if _, err := os.Stat(c.EgressPolicy); err != nil {
		return bad("--egress-policy", "%v", err)
	}
	c.EgressSocketRoot = orDefault(c.EgressSocketRoot, DefaultEgressSocketRoot)
	if !filepath.IsAbs(c.EgressSocketRoot) {
		return bad("EGRESS_SOCKET_ROOT", "%q: must be an absolute path", c.EgressSocketRoot)
	}
	c.EgressSocketRoot = filepath.Clean(c.EgressSocketRoot)
	return nil
}

// validateSandbox checks the supervisor binary and socket root, and finds
// the user the sandbox runs as.
func (c *Config) validateSandbox(bad func(field, format string, args ...any) error) error {
	c.uid, c.gid = -1, -1
	c.SocketRoot = orDefault(c.SocketRoot, DefaultSocketRoot)
	if !filepath.IsAbs(c.SocketRoot) {
		return bad("SANDBOX_SOCKET_ROOT", "%q: must be an absolute path", c.SocketRoot)
	}
	c.SocketRoot = filepath.Clean(c.SocketRoot)
	if c.LockDir == "" {
		c.LockDir = DefaultLockDir
		if os.Geteuid() != 0 {
			c.LockDir = filepath.Join(os.TempDir(), "agentaudit-runners-"+strconv.Itoa(os.Geteuid()))
		}
	}
	if !filepath.IsAbs(c.LockDir) {
		return bad("RUNNER_LOCK_DIR", "%q: must be an absolute path", c.LockDir)
	}
	if c.Supervisor != "" {
		fi, err := os.Stat(c.Supervisor)
		if err != nil {
			return bad("SANDBOX_SUPERVISOR", "%v", err)
		}
		if !fi.Mode().IsRegular() || fi.Mode().Perm()&0o001 == 0 {
			return bad("SANDBOX_SUPERVISOR", "%s: not a file every user may execute (mode %v)", c.Supervisor, fi.Mode())
		}
	}
	switch {
	case c.PodmanUID != "":
		n, err := strconv.Atoi(c.PodmanUID)
		if err != nil || n < 0 {
			return bad("PODMAN_UID", "%q: a user id", c.PodmanUID)
		}
		c.uid, c.gid = n, n
		if u, err := user.LookupId(c.PodmanUID); err == nil {
			if g, err := strconv.Atoi(u.Gid); err == nil {
				c.gid = g
			}
		}
	case os.Geteuid() == 0:
		// A root runner serves a rootless Podman user: the owner of its
		// API socket.
		sock := strings.TrimPrefix(c.PodmanSocket, "unix://")
		var st syscall.Stat_t
		if err := syscall.Stat(sock, &st); err != nil {
			return bad("PODMAN_UID", "not set, and the Podman socket's owner is unknown: %v", err)
		}
		c.uid, c.gid = int(st.Uid), int(st.Gid)
	}
	return nil
}

// Topics returns the configured topic names.
func (c *Config) Topics() eventlog.Topics {
	return eventlog.Topics{Events: c.TopicEvents, Approvals: c.TopicApprovals, DLQ: c.TopicDLQ}
}

// Service is a Runner wired to Kafka and Podman as the binary runs it.
type Service struct {
	*Runner
	Producer *eventlog.Producer
	Podman   *PodmanSandbox
	Profile  *sandbox.Profile
	// Lost are the sessions of a previous run of this runner that this
	// start found without their runner and closed.
	Lost []LostSession
	feed *Feed
	cfg  Config
	// idLock holds the runner id for this process (claimRunnerID).
	idLock *os.File
}

// Open validates cfg and wires a runner: the producer (with spool), the
// Podman client (removing this runner's leftover containers), the sandbox
// profile and policy, the approval keys and the approvals feed.
func Open(ctx context.Context, cfg Config, opts ...Option) (*Service, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	log := cfg.Logger
	pol, err := loadPolicy(cfg.PolicyFile)
	if err != nil {
		return nil, err
	}
	prof := sandbox.DefaultProfile()
	if cfg.Profile != nil {
		prof = cfg.Profile
	} else if cfg.ProfileFile != "" {
		if prof, err = sandbox.LoadProfile(cfg.ProfileFile); err != nil {
			return nil, fmt.Errorf("%w: --profile: %w", ErrConfig, err)
		}
	}
	var eg *NetpolEgress
	if cfg.EgressPolicy != "" {
		if eg, err = openEgress(ctx, cfg); err != nil {
			return nil, err
		}
	} else {
		log.Info("no egress policy (EGRESS_POLICY, --egress-policy): sandboxes have no network at all")
	}
	var keys *signing.KeySet
	if cfg.ApprovalKeys != "" {
		if keys, err = signing.LoadKeySet(cfg.ApprovalKeys); err != nil {
			return nil, fmt.Errorf("%w: APPROVAL_KEYS: %w", ErrConfig, err)
		}
	} else {
		log.Warn("APPROVAL_KEYS is not set: no approval can be verified, so every ask ends denied")
	}
	if err := prepareSocketRoot(cfg.SocketRoot, cfg.uid); err != nil {
		return nil, fmt.Errorf("%w: SANDBOX_SOCKET_ROOT: %w", ErrConfig, err)
	}
	if err := os.MkdirAll(cfg.LockDir, 0o700); err != nil {
		return nil, fmt.Errorf("%w: RUNNER_LOCK_DIR: %w", ErrConfig, err)
	}
	idLock, id, err := claimRunnerID(cfg.LockDir, cfg.RunnerID, cfg.runnerIDDefault)
	if err != nil {
		return nil, err
	}
	if id != cfg.RunnerID {
		log.Info("runner id in use by another running runner; taking the next", "runner_id", id, "default", cfg.RunnerID)
		cfg.RunnerID = id
	}
	opened := false
	defer func() {
		if !opened {
			idLock.Close()
		}
	}()
	supBin, err := findSupervisor(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("%w: SANDBOX_SUPERVISOR: %w", ErrConfig, err)
	}
	sc, err := sandbox.New(ctx, cfg.PodmanSocket, sandbox.WithRunnerID(cfg.RunnerID),
		sandbox.WithImage(cfg.SandboxImage), sandbox.WithLogger(log),
		sandbox.WithSupervisor(sandbox.SupervisorConfig{Binary: supBin, SocketRoot: cfg.SocketRoot, UID: cfg.uid, GID: cfg.gid}))
	if err != nil {
		return nil, err
	}
	removed, err := sc.CleanupLeftovers(ctx, cfg.RunnerID)
	if err != nil {
		log.Warn("leftover sandbox cleanup failed", "err", err)
	}
	psb, err := NewPodmanSandbox(sc, prof)
	if err != nil {
		return nil, err
	}
	psb.uid = cfg.uid
	if psb.uid < 0 {
		psb.uid = os.Geteuid() // rootless Podman as the runner's own user
	}
	prod, err := eventlog.NewProducer(ctx, cfg.KafkaBrokers, cfg.RunnerID,
		eventlog.WithTopics(cfg.Topics()), eventlog.WithAckTimeout(cfg.AckTimeout),
		eventlog.WithSpool(cfg.SpoolDir, 256<<20), eventlog.WithEnsureTopics(-1, -1),
		eventlog.WithProducerLogger(log))
	if err != nil {
		// Kafka unreachable: `runner serve` keeps serving and refuses
		// calls audit_unavailable until a retry gets through.
		return nil, fmt.Errorf("runner: audit producer: %w: %w", eventlog.ErrAuditUnavailable, err)
	}
	// Sessions whose sandboxes outlived their runner: their supervisors
	// killed every process when the runner's socket closed; their ends
	// (and calls that never completed) are recorded on their chains.
	var lost []string
	for _, l := range removed {
		lost = append(lost, l.Session)
	}
	ropts := []Option{
		WithNodeID(cfg.node),
		WithTenant(cfg.Tenant), WithOperator(cfg.Operator), WithApprovalTimeout(cfg.ApprovalTimeout),
		WithApprovalKeys(keys), WithLogger(log),
	}
	if eg != nil {
		ropts = append(ropts, WithEgress(eg))
	}
	ropts = append(ropts, opts...)
	r, err := New(prod, psb, pol, ropts...)
	if err != nil {
		prod.Close(ctx)
		return nil, err
	}
	feed, err := FollowApprovals(ctx, cfg.KafkaBrokers, cfg.TopicApprovals, r.Dispatch, r.Stats(), log)
	if err != nil {
		prod.Close(ctx)
		return nil, fmt.Errorf("%w: %w", eventlog.ErrAuditUnavailable, err)
	}
	svc := &Service{Runner: r, Producer: prod, Podman: psb, Profile: prof, feed: feed, cfg: cfg, idLock: idLock}
	opened = true
	svc.Lost = recoverLost(ctx, prod, r.ids, cfg.Tenant, cfg.RunnerID, lost, log)
	return svc, nil
}

func loadPolicy(file string) (*policy.Policy, error) {
	var p *policy.Policy
	var err error
	if file == "" {
		p, err = policy.Default()
	} else {
		p, err = policy.Load(file)
	}
	if err != nil {
		return nil, fmt.Errorf("%w: --policy: %w", ErrConfig, err)
	}
	return p, nil
}

// Close stops the feed and flushes and closes the producer (spooled events
// stay on disk for the next start). Close sessions first.
func (s *Service) Close(ctx context.Context) error {
	s.feed.Close()
	err := s.Producer.Close(ctx)
	s.idLock.Close()
	return err
}
