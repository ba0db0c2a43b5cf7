package runner

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/agentaudit/agentaudit/internal/eventlog/eventlogtest"
	"github.com/agentaudit/agentaudit/internal/testenv"
)

func TestConfigValidateNamesTheField(t *testing.T) {
	ok := func() Config {
		return Config{KafkaBrokers: []string{"127.0.0.1:9092"}, PodmanSocket: "/run/user/999/podman/podman.sock"}
	}
	cases := []struct {
		name  string
		edit  func(*Config)
		field string // "" = valid
	}{
		{"valid", func(*Config) {}, ""},
		{"no brokers", func(c *Config) { c.KafkaBrokers = []string{" , "} }, "KAFKA_BROKERS"},
		{"no podman", func(c *Config) { c.PodmanSocket = "" }, "PODMAN_SOCKET"},
		{"bad runner id", func(c *Config) { c.RunnerID = "has space" }, "RUNNER_ID"},
		{"bad tenant", func(c *Config) { c.Tenant = "Acme" }, "RUNNER_TENANT"},
		{"negative timeout", func(c *Config) { c.ApprovalTimeout = -time.Second }, "APPROVAL_TIMEOUT"},
		{"missing keys", func(c *Config) { c.ApprovalKeys = "/nonexistent/keys.json" }, "APPROVAL_KEYS"},
		{"missing policy", func(c *Config) { c.PolicyFile = "/nonexistent/policy.yaml" }, "--policy"},
		{"missing egress policy", func(c *Config) { c.EgressPolicy = "/nonexistent/egress.yaml" }, "--egress-policy"},
		{"relative socket root", func(c *Config) {
			c.EgressPolicy, c.EgressSocketRoot, c.PodmanUID = egressExample, "run/egress", "999"
		}, "EGRESS_SOCKET_ROOT"},
		{"missing supervisor", func(c *Config) { c.Supervisor = "/nonexistent/sandbox-supervisor" }, "SANDBOX_SUPERVISOR"},
		{"relative sandbox socket root", func(c *Config) { c.SocketRoot = "run/sandbox" }, "SANDBOX_SOCKET_ROOT"},
		{"bad podman uid", func(c *Config) { c.PodmanUID = "sbx" }, "PODMAN_UID"},
		{"egress on", func(c *Config) { c.EgressPolicy, c.PodmanUID = egressExample, "999" }, ""},
	}
	for _, tc := range cases {
		c := ok()
		tc.edit(&c)
		err := c.Validate()
		switch {
		case tc.field == "" && err != nil:
			t.Errorf("%s: %v", tc.name, err)
		case tc.field != "" && (!errors.Is(err, ErrConfig) || !strings.Contains(err.Error(), tc.field+":")):
			t.Errorf("%s: error %v does not name %s", tc.name, err, tc.field)
		}
	}
	c := ok()
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	if c.ApprovalTimeout != 15*time.Minute || c.Tenant != "default" || !strings.HasPrefix(c.RunnerID, "runner-") ||
		c.PodmanSocket != "unix:///run/user/999/podman/podman.sock" || c.TopicApprovals != "audit.approvals" || c.SpoolDir == "" {
		t.Errorf("defaults not filled: %+v", c)
	}
}

func TestIntegrationRunExec(t *testing.T) {
	brokers := testenv.Kafka(t)
	tp := eventlogtest.Topics(t, brokers)
	ws := itWorkspace(t)
	cfg := Config{KafkaBrokers: brokers, PodmanSocket: testenv.Podman(t), SandboxImage: testenv.Get(t, "SANDBOX_IMAGE"),
		RunnerID: "runner-exec-it", SpoolDir: t.TempDir(), Workspace: ws,
		Supervisor: testenv.SupervisorBinary(t), SocketRoot: testenv.SocketRoot(t), PodmanUID: testenv.Get(t, "PODMAN_UID"),
		TopicEvents: tp.Events, TopicApprovals: tp.Approvals, TopicDLQ: tp.DLQ}
	var out, errOut bytes.Buffer
	code, err := RunExec(context.Background(), cfg, []string{"sh", "-c", "echo hello; echo oops >&2; touch ran.marker; exit 3"}, &out, &errOut)
	if err != nil || code != 3 || out.String() != "hello\n" || errOut.String() != "oops\n" || !exists(ws, "ran.marker") {
		t.Errorf("exec: code %d err %v stdout %q stderr %q", code, err, out.String(), errOut.String())
	}
	out.Reset()
	errOut.Reset()
	code, err = RunExec(context.Background(), cfg, []string{"sh", "-c", "touch denied.marker; rm -rf /"}, &out, &errOut)
	if err != nil || code != ExitDenied || !strings.Contains(errOut.String(), "denied (denied_by_rule)") || exists(ws, "denied.marker") {
		t.Errorf("denied exec: code %d err %v stderr %q", code, err, errOut.String())
	}
}
