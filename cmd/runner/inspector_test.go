package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/agentaudit/agentaudit/internal/eventlog"
	"github.com/agentaudit/agentaudit/internal/events"
	"github.com/agentaudit/agentaudit/internal/sandbox"
	"github.com/agentaudit/agentaudit/internal/testenv"
)

// inspectorDir holds the pinned MCP Inspector (package.json and
// package-lock.json); its node_modules are installed by `make test-deps`.
const inspectorDir = "testdata/inspector"

const goTags = "remote,containers_image_openpgp,exclude_graphdriver_btrfs,exclude_graphdriver_devicemapper"

// TestInspector drives `runner serve --mcp stdio` with the MCP Inspector
// CLI, an MCP client nobody here wrote, against the real Kafka and Podman:
// it lists the tools, runs shell and write_file, and gets a policy denial
// with its reason code.
func TestInspector(t *testing.T) {
	bin, err := filepath.Abs(filepath.Join(inspectorDir, "node_modules", ".bin", "mcp-inspector"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(bin); err != nil {
		t.Fatalf("the MCP Inspector is not installed (%v); install it with: npm ci --prefix cmd/runner/%s", err, inspectorDir)
	}
	if _, err := exec.LookPath("node"); err != nil {
		t.Fatalf("node is not on PATH: %v; the MCP Inspector needs Node.js 20+", err)
	}
	brokers := testenv.Kafka(t)
	sock := testenv.Podman(t)
	image := testenv.Get(t, "SANDBOX_IMAGE")

	runnerBin := filepath.Join(t.TempDir(), "runner")
	build := exec.Command("go", "build", "-tags", goTags, "-o", runnerBin, ".")
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build runner: %v\n%s", err, out)
	}

	ws, err := os.MkdirTemp("", "agentaudit-inspector-ws-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(ws) })
	os.Chmod(ws, 0o755)
	uid, _ := strconv.Atoi(testenv.Get(t, "PODMAN_UID"))
	if err := sandbox.PrepareWorkspace(ws, uid, uid); err != nil {
		t.Fatal(err)
	}

	suffix := strconv.FormatInt(time.Now().UnixNano(), 10)
	topics := eventlog.Topics{Events: "test.events.inspector." + suffix, Approvals: "test.approvals.inspector." + suffix, DLQ: "test.dlq.inspector." + suffix}
	t.Cleanup(func() { deleteTopics(brokers, topics) })
	runnerID := "runner-inspector-" + suffix
	env := map[string]string{
		"KAFKA_BROKERS": strings.Join(brokers, ","), "PODMAN_SOCKET": sock, "SANDBOX_IMAGE": image,
		"RUNNER_ID": runnerID, "RUNNER_TENANT": "acme", "RUNNER_OPERATOR": "inspector-test",
		"SPOOL_DIR": t.TempDir(), "AUDIT_TOPIC_EVENTS": topics.Events,
		"AUDIT_TOPIC_APPROVALS": topics.Approvals, "AUDIT_TOPIC_DLQ": topics.DLQ,
		"SANDBOX_SUPERVISOR": testenv.SupervisorBinary(t), "SANDBOX_SOCKET_ROOT": testenv.SocketRoot(t),
		"PODMAN_UID": testenv.Get(t, "PODMAN_UID"),
	}
	home := t.TempDir()
	inspect := func(args ...string) (map[string]any, int) {
		t.Helper()
		full := []string{"--cli"}
		for k, v := range env {
			full = append(full, "-e", k+"="+v)
		}
		full = append(full, runnerBin, "serve", "--mcp", "stdio", "--workspace", ws)
		full = append(full, args...)
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		cmd := exec.CommandContext(ctx, bin, full...)
		cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + home}
		var stdout, stderr bytes.Buffer
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		err := cmd.Run()
		code := 0
		if ee, ok := err.(*exec.ExitError); ok {
			code = ee.ExitCode()
		} else if err != nil {
			t.Fatalf("mcp-inspector %s: %v\nstderr:\n%s", strings.Join(args, " "), err, stderr.String())
		}
		// The result is the first JSON document on stdout; a tool error is
		// followed by a one-line error summary.
		var res map[string]any
		if err := json.NewDecoder(&stdout).Decode(&res); err != nil {
			t.Fatalf("mcp-inspector %s: exit %d, output not JSON: %v\nstderr:\n%s", strings.Join(args, " "), code, err, stderr.String())
		}
		return res, code
	}

	t.Run("tools/list", func(t *testing.T) {
		res, code := inspect("--method", "tools/list")
		var names []string
		for _, tl := range res["tools"].([]any) {
			names = append(names, tl.(map[string]any)["name"].(string))
		}
		if code != 0 || strings.Join(names, ",") != "list_files,read_file,shell,write_file" {
			t.Errorf("exit %d, tools %v", code, names)
		}
	})

	t.Run("shell runs", func(t *testing.T) {
		res, code := inspect("--method", "tools/call", "--tool-name", "shell",
			"--tool-arg", "command=echo inspected > shell.txt && cat shell.txt && id -u")
		sc, _ := res["structuredContent"].(map[string]any)
		if code != 0 || res["isError"] == true || sc["exit_code"] != float64(0) || sc["stdout"] != fmt.Sprintf("inspected\n%d\n", uid) {
			t.Errorf("exit %d, result %v", code, res)
		}
		if b, _ := os.ReadFile(filepath.Join(ws, "shell.txt")); string(b) != "inspected\n" {
			t.Errorf("shell.txt = %q", b)
		}
	})

	t.Run("write_file writes", func(t *testing.T) {
		res, code := inspect("--method", "tools/call", "--tool-name", "write_file",
			"--tool-arg", "path=notes/todo.txt", "--tool-arg", "content=ship it", "--tool-arg", "create_dirs=true")
		if code != 0 || res["isError"] == true {
			t.Errorf("exit %d, result %v", code, res)
		}
		if b, _ := os.ReadFile(filepath.Join(ws, "notes", "todo.txt")); string(b) != "ship it" {
			t.Errorf("notes/todo.txt = %q", b)
		}
	})

	t.Run("policy denial carries its reason", func(t *testing.T) {
		res, code := inspect("--method", "tools/call", "--tool-name", "shell",
			"--tool-arg", "command=touch denied.marker; rm -rf /")
		sc, _ := res["structuredContent"].(map[string]any)
		text := ""
		if c, ok := res["content"].([]any); ok && len(c) > 0 {
			text, _ = c[0].(map[string]any)["text"].(string)
		}
		if code == 0 || res["isError"] != true || sc["reason_code"] != "denied_by_rule" ||
			!strings.HasPrefix(text, "denied (denied_by_rule) by rule destroy-root: ") {
			t.Errorf("exit %d, result %v", code, res)
		}
		if _, err := os.Stat(filepath.Join(ws, "denied.marker")); err == nil {
			t.Error("the denied command ran")
		}
	})

	t.Run("sessions name the inspector as the agent", func(t *testing.T) {
		started := readStarted(t, brokers, topics.Events, 4)
		if len(started) != 4 {
			t.Fatalf("session.started events: %d, want 4 (one per inspector run)", len(started))
		}
		for _, e := range started {
			p, _ := e.DecodePayload()
			ss := p.(*events.SessionStarted)
			if ss.Mode != "mcp" || ss.Client == nil || ss.Client.Name == "" || e.Agent == nil || ss.Operator != "inspector-test" || ss.SandboxProfileSHA256 == "" {
				t.Errorf("session.started: %+v agent %+v", ss, e.Agent)
			}
		}
		t.Logf("agent as the inspector names itself: %+v", started[0].Agent)
	})
}

func readStarted(t *testing.T, brokers []string, topic string, want int) []*events.Envelope {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.ConsumeTopics(topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.FetchMaxWait(200*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	var out []*events.Envelope
	for len(out) < want && ctx.Err() == nil {
		cl.PollFetches(ctx).EachRecord(func(r *kgo.Record) {
			if e, err := events.Decode(r.Value); err == nil && e.EventType == events.TypeSessionStarted {
				out = append(out, e)
			}
		})
	}
	return out
}

func deleteTopics(brokers []string, tp eventlog.Topics) {
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...))
	if err != nil {
		return
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	kadm.NewClient(cl).DeleteTopics(ctx, tp.Events, tp.Approvals, tp.DLQ)
}
