package demo

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"time"

	"github.com/agentaudit/agentaudit/internal/testenv/envfile"
)

// ErrConfig reports a configuration the demo cannot run with; the message
// names the bad field.
var ErrConfig = errors.New("demo: bad config")

// ErrStep reports a demo step whose outcome was not what the system should
// do (a denial that did not happen, a hold that never came).
var ErrStep = errors.New("demo: step failed")

// Config is what Run needs. Zero fields get the defaults validate names.
type Config struct {
	// Root is the repository root (rules/, .testenv/env). Default: the
	// nearest parent of the working directory holding go.mod.
	Root string
	// Dir holds the demo's keys, token, approvers.yaml, egress policy,
	// logs, workspace and reports. Default Root/.testenv/demo.
	Dir string
	// BinDir holds runner, sandbox-supervisor, approve, ingest, detect
	// and query (`make build`). Default Root/bin.
	BinDir string
	// RulesDir is the detection rule pack. Default Root/rules.
	RulesDir string
	// Prefix names the demo's topics (PREFIX.events, PREFIX.approvals,
	// PREFIX.dlq, PREFIX.detect.state, PREFIX.detect.repartition) and
	// consumer groups (PREFIX-ingest, PREFIX-detect), so the demo never
	// shares a consumer group with another ingester or detector on the
	// same Kafka. Default "demo".
	Prefix string
	// ApproveListen is the approvals service's address. Default
	// 127.0.0.1:8480 when it is free, else a free loopback port.
	ApproveListen string
	// Interactive waits for a person to answer approvals and release the
	// hold (the inbox URL and the token are printed) instead of the
	// scripted approver.
	Interactive bool
	// Agent, when "codex" or "claude", also runs that agent CLI itself in
	// a sandbox (runner agent) after the MCP session, driven by a
	// scripted model; its own tools go through its managed hooks.
	Agent string
	// Env is the services' environment (KAFKA_BROKERS, CLICKHOUSE_*,
	// PODMAN_SOCKET, SANDBOX_IMAGE, …). Default: .testenv/env, overridden
	// by the process environment.
	Env map[string]string
	// StepTimeout bounds each wait (a service's /healthz, an approval
	// request to appear, the hold, the rows in ClickHouse). Default 90s.
	StepTimeout time.Duration
	// Out receives the progress and the reports. Default os.Stdout.
	Out io.Writer
	// Logger logs diagnostics. Default: discard.
	Logger *slog.Logger
}

var prefixPattern = regexp.MustCompile(`^[a-z0-9][a-z0-9._-]{0,62}$`)

// binaries the demo runs from BinDir.
var binaries = []string{"runner", "sandbox-supervisor", "approve", "ingest", "detect", "query"}

// envNeeded are the variables the services cannot start without.
var envNeeded = []string{"KAFKA_BROKERS", "CLICKHOUSE_ADDR", "CLICKHOUSE_USER", "CLICKHOUSE_READONLY_USER",
	"CLICKHOUSE_DATABASE", "PODMAN_SOCKET", "SANDBOX_IMAGE"}

func (c *Config) validate() error {
	bad := func(field, format string, args ...any) error {
		return fmt.Errorf("%w: %s: %s", ErrConfig, field, fmt.Sprintf(format, args...))
	}
	if c.Root == "" {
		root, err := envfile.Root()
		if err != nil {
			return bad("Root", "%v", err)
		}
		c.Root = root
	}
	abs := func(p, def string) string {
		if p == "" {
			p = def
		}
		if a, err := filepath.Abs(p); err == nil {
			return a
		}
		return p
	}
	c.Root = abs(c.Root, "")
	c.Dir = abs(c.Dir, filepath.Join(c.Root, ".testenv", "demo"))
	c.BinDir = abs(c.BinDir, filepath.Join(c.Root, "bin"))
	c.RulesDir = abs(c.RulesDir, filepath.Join(c.Root, "rules"))
	for _, b := range binaries {
		if fi, err := os.Stat(filepath.Join(c.BinDir, b)); err != nil || fi.IsDir() {
			return bad("BinDir", "%s has no %s binary (run `make build`)", c.BinDir, b)
		}
	}
	if fi, err := os.Stat(c.RulesDir); err != nil || !fi.IsDir() {
		return bad("RulesDir", "%s is not a directory", c.RulesDir)
	}
	if c.Agent != "" && !realAgents[c.Agent] {
		return bad("Agent", "%q: want codex or claude", c.Agent)
	}
	if c.Prefix == "" {
		c.Prefix = "demo"
	}
	if !prefixPattern.MatchString(c.Prefix) {
		return bad("Prefix", "%q: lower-case letters, digits, . _ -", c.Prefix)
	}
	if c.Env == nil {
		env, err := envfile.Load(envfile.Path(c.Root))
		if err != nil {
			return bad("Env", "%v (run testenv/up)", err)
		}
		c.Env = env
	}
	for _, k := range envNeeded {
		if c.Env[k] == "" {
			return bad("Env", "%s is not set (run testenv/up)", k)
		}
	}
	if c.ApproveListen == "" {
		c.ApproveListen = "127.0.0.1:8480"
		if !portFree(c.ApproveListen) {
			c.ApproveListen = ""
		}
	}
	if c.ApproveListen == "" {
		p, err := freePort()
		if err != nil {
			return bad("ApproveListen", "%v", err)
		}
		c.ApproveListen = p
	}
	if host, _, err := net.SplitHostPort(c.ApproveListen); err != nil || host != "127.0.0.1" {
		return bad("ApproveListen", "%q: want 127.0.0.1:PORT", c.ApproveListen)
	}
	if c.StepTimeout == 0 {
		c.StepTimeout = 90 * time.Second
	}
	if c.StepTimeout < 0 {
		return bad("StepTimeout", "must be positive")
	}
	if c.Out == nil {
		c.Out = os.Stdout
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	return nil
}

func portFree(addr string) bool {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return false
	}
	ln.Close()
	return true
}

// freePort returns a loopback address nobody listens on right now.
func freePort() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer ln.Close()
	return ln.Addr().String(), nil
}
