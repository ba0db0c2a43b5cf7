package demo

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/agentaudit/agentaudit/internal/approvals"
	"github.com/agentaudit/agentaudit/internal/approvals/signing"
)

// approverID is the scripted approver's id in approvers.yaml.
const approverID = "demo-approver"

// credentials are the files Run prepares in Config.Dir.
type credentials struct {
	signer, keySet string // approve keygen
	approvers      string // approvers.yaml
	token          string // the approver's bearer token
}

// prepareCredentials writes the signing key (approve keygen), the
// approver's token (approve token) and approvers.yaml, or reuses them from
// an earlier run: the approvals service folds the whole approvals topic at
// start, so keeping the key keeps earlier runs' decisions verifiable.
func (d *demo) prepareCredentials(ctx context.Context) (credentials, error) {
	keys := filepath.Join(d.cfg.Dir, "keys")
	c := credentials{
		signer: filepath.Join(keys, signing.SignerFile), keySet: filepath.Join(keys, signing.KeySetFile),
		approvers: filepath.Join(d.cfg.Dir, "approvers.yaml"),
	}
	if _, err := os.Stat(c.signer); errors.Is(err, os.ErrNotExist) {
		kid := "demo-" + time.Now().UTC().Format("20060102-150405")
		if _, err := d.runTool(ctx, "approve", "keygen", "--id", kid, "--out", keys); err != nil {
			return c, err
		}
	}
	tokenFile := filepath.Join(d.cfg.Dir, "approver.token")
	if b, err := os.ReadFile(tokenFile); err == nil && len(bytes.TrimSpace(b)) > 0 {
		c.token = string(bytes.TrimSpace(b))
	} else {
		out, err := d.runTool(ctx, "approve", "token")
		if err != nil {
			return c, err
		}
		token, _, _ := strings.Cut(out, "\n")
		c.token = strings.TrimSpace(token)
		if err := os.WriteFile(tokenFile, []byte(c.token+"\n"), 0o600); err != nil {
			return c, err
		}
	}
	// The demo approver answers every kind of request; a deployment
	// splits this across groups (see internal/approvals.Config).
	yaml := fmt.Sprintf(`# Written by the demo: one approver for every kind of request.
approvers:
  - id: %s
    name: Demo Approver
    groups: [demo]
    token_sha256: %s
groups:
  - name: demo
    may_answer:
      - {}
`, approverID, approvals.HashToken(c.token))
	return c, os.WriteFile(c.approvers, []byte(yaml), 0o600)
}

// testServers are the HTTP servers on the host's 127.0.0.1 the sandbox
// reaches through the egress proxy.
type testServers struct {
	allowed, ask *http.Server
	allowedPort  int
	askPort      int
	deniedPort   int // no rule names it: the proxy refuses before dialing
}

const (
	allowedBody = "hello from the allowed test server\n"
	askBody     = "hello from the test server that needs approval\n"
)

func startTestServers() (*testServers, error) {
	ts := &testServers{}
	serve := func(body string) (*http.Server, int, error) {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, 0, err
		}
		srv := &http.Server{ReadHeaderTimeout: 5 * time.Second,
			Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { fmt.Fprint(w, body) })}
		go srv.Serve(ln)
		return srv, ln.Addr().(*net.TCPAddr).Port, nil
	}
	var err error
	if ts.allowed, ts.allowedPort, err = serve(allowedBody); err != nil {
		return nil, err
	}
	if ts.ask, ts.askPort, err = serve(askBody); err != nil {
		ts.allowed.Close()
		return nil, err
	}
	// A port nobody listens on and no rule names.
	addr, err := freePort()
	if err != nil {
		ts.close()
		return nil, err
	}
	_, p, _ := net.SplitHostPort(addr)
	fmt.Sscan(p, &ts.deniedPort)
	return ts, nil
}

func (ts *testServers) close() {
	ts.allowed.Close()
	ts.ask.Close()
}

// writeEgressPolicy writes the demo's egress policy: the allowed server by
// exact IP and port, the ask server's port needs approval, and everything
// else is denied. Loopback stays blocked unless a rule names the exact IP.
func (d *demo) writeEgressPolicy(ts *testServers) (string, error) {
	pol := fmt.Sprintf(`# Written by the demo: egress to the demo's test servers on the host's loopback.
id: egress-demo
version: "1"
default: deny
rules:
  - id: demo-allowed-server
    decision: allow
    cidrs: ["127.0.0.1/32"]
    ports: [%d]
    justification: the demo's allowed test server
  - id: demo-ask-server
    decision: ask
    cidrs: ["127.0.0.1/32"]
    ports: [%d]
    justification: the demo's second test server, reached only with a human's approval
`, ts.allowedPort, ts.askPort)
	path := filepath.Join(d.cfg.Dir, "egress.yaml")
	return path, os.WriteFile(path, []byte(pol), 0o644)
}

// service is a subprocess the demo started and stops.
type service struct {
	name   string
	cmd    *exec.Cmd
	log    string
	health string // URL of /healthz, or tcp://ADDR: ready once it accepts
	exited chan struct{}
	err    error
}

// env returns the services' environment plus extra.
func (d *demo) env(extra ...string) []string {
	out := os.Environ()
	for k, v := range d.cfg.Env {
		out = append(out, k+"="+v)
	}
	return append(out, extra...)
}

// start runs bin args as a service with its output in logs/NAME.log and
// waits until health answers 200.
func (d *demo) start(ctx context.Context, name, health string, env []string, args ...string) (*service, error) {
	logPath := filepath.Join(d.cfg.Dir, "logs", name+".log")
	f, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(filepath.Join(d.cfg.BinDir, args[0]), args[1:]...)
	cmd.Env, cmd.Stdout, cmd.Stderr = env, f, f
	// Its own process group: a Ctrl-C at the terminal reaches the demo,
	// which stops the services in order.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		f.Close()
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	s := &service{name: name, cmd: cmd, log: logPath, health: health, exited: make(chan struct{})}
	go func() {
		s.err = cmd.Wait()
		f.Close()
		close(s.exited)
	}()
	d.services = append(d.services, s)
	if err := s.waitHealthy(ctx, d.cfg.StepTimeout); err != nil {
		return nil, err
	}
	return s, nil
}

func (s *service) waitHealthy(ctx context.Context, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	client := &http.Client{Timeout: 2 * time.Second}
	for {
		if addr, ok := strings.CutPrefix(s.health, "tcp://"); ok {
			if c, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
				c.Close()
				return nil
			}
		} else {
			req, _ := http.NewRequestWithContext(ctx, http.MethodGet, s.health, nil)
			if resp, err := client.Do(req); err == nil {
				resp.Body.Close()
				if resp.StatusCode == http.StatusOK {
					return nil
				}
			}
		}
		select {
		case <-s.exited:
			return fmt.Errorf("%s exited before it was healthy (%v); its log %s ends:\n%s", s.name, s.err, s.log, tail(s.log, 15))
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s not healthy at %s after %s; its log %s ends:\n%s", s.name, s.health, timeout, s.log, tail(s.log, 15))
		}
	}
}

// stop sends SIGTERM and waits, then SIGKILL.
func (s *service) stop(grace time.Duration) {
	select {
	case <-s.exited:
		return
	default:
	}
	s.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-s.exited:
	case <-time.After(grace):
		s.cmd.Process.Kill()
		<-s.exited
	}
}

// stopServices stops the services in reverse order of their start.
func (d *demo) stopServices() {
	for i := len(d.services) - 1; i >= 0; i-- {
		d.services[i].stop(15 * time.Second)
	}
	d.services = nil
}

// runTool runs a binary to completion and returns its stdout; a failure
// carries its stderr.
func (d *demo) runTool(ctx context.Context, bin string, args ...string) (string, error) {
	out, _, _, err := d.runToolCode(ctx, bin, args...)
	return out, err
}

// runToolCode runs a binary to completion and returns its stdout, its
// stderr and its exit status.
func (d *demo) runToolCode(ctx context.Context, bin string, args ...string) (string, string, int, error) {
	cmd := exec.CommandContext(ctx, filepath.Join(d.cfg.BinDir, bin), args...)
	cmd.Env = d.env()
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	code := cmd.ProcessState.ExitCode()
	if err != nil {
		err = fmt.Errorf("%s %s: %w: %s", bin, strings.Join(args, " "), err, strings.TrimSpace(stderr.String()))
	}
	return stdout.String(), stderr.String(), code, err
}

// tail returns the last n lines of a file.
func tail(path string, n int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return err.Error()
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return "  " + strings.Join(lines, "\n  ")
}
