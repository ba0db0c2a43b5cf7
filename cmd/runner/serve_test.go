package main

import (
	"context"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/agentaudit/agentaudit/internal/eventlog"
	"github.com/agentaudit/agentaudit/internal/events"
	"github.com/agentaudit/agentaudit/internal/sandbox"
	"github.com/agentaudit/agentaudit/internal/testenv"
)

// These tests run the runner binary the way agents run it, against the
// real Podman and (except where Kafka is meant to be down) the real Kafka,
// on topics private to each test, for what real clients tripped on.

// runnerBinary builds the runner for one test (the build cache makes the
// second and later builds a link).
func runnerBinary(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "runner")
	build := exec.Command("go", "build", "-tags", goTags, "-o", bin, ".")
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build runner: %v\n%s", err, out)
	}
	return bin
}

// serveEnv is the environment of a runner on private topics.
type serveEnv struct {
	env    []string
	topics eventlog.Topics
	ws     string
	spool  string
}

func newServeEnv(t *testing.T, brokers []string) *serveEnv {
	t.Helper()
	sock := testenv.Podman(t)
	ws, err := os.MkdirTemp("", "agentaudit-serve-ws-")
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
	tp := eventlog.Topics{Events: "test.events.serve." + suffix, Approvals: "test.approvals.serve." + suffix, DLQ: "test.dlq.serve." + suffix}
	spool := t.TempDir()
	env := []string{
		"PATH=" + os.Getenv("PATH"), "HOME=" + t.TempDir(),
		"KAFKA_BROKERS=" + strings.Join(brokers, ","), "PODMAN_SOCKET=" + sock, "SANDBOX_IMAGE=" + testenv.Get(t, "SANDBOX_IMAGE"),
		"RUNNER_ID=runner-serve-" + suffix, "RUNNER_TENANT=acme", "RUNNER_OPERATOR=serve-test", "SPOOL_DIR=" + spool,
		"AUDIT_TOPIC_EVENTS=" + tp.Events, "AUDIT_TOPIC_APPROVALS=" + tp.Approvals, "AUDIT_TOPIC_DLQ=" + tp.DLQ,
		"SANDBOX_SUPERVISOR=" + testenv.SupervisorBinary(t), "SANDBOX_SOCKET_ROOT=" + testenv.SocketRoot(t),
		"PODMAN_UID=" + testenv.Get(t, "PODMAN_UID"), "AUDIT_ACK_TIMEOUT=2s",
	}
	return &serveEnv{env: env, topics: tp, ws: ws, spool: spool}
}

// served is a running `runner serve --mcp stdio` and its client.
type served struct {
	cmd    *exec.Cmd
	cs     *mcp.ClientSession
	exited chan struct{} // closed when cmd.Wait returned
	err    error
}

// start runs the runner with stderr going to stderr (nil: a pipe whose
// reading end is already closed, as an agent that went away leaves it).
func (e *serveEnv) start(t *testing.T, stderr io.Writer, args ...string) *served {
	t.Helper()
	cmd := exec.Command(runnerBinary(t), append([]string{"serve", "--mcp", "stdio", "--workspace", e.ws}, args...)...)
	cmd.Env = e.env
	if stderr == nil {
		r, w, err := os.Pipe()
		if err != nil {
			t.Fatal(err)
		}
		r.Close() // every write to stderr now raises SIGPIPE
		cmd.Stderr = w
		t.Cleanup(func() { w.Close() })
	} else {
		cmd.Stderr = stderr
	}
	// The test, not the client, waits for the process: its exit status
	// and time are the point.
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	s := &served{cmd: cmd, exited: make(chan struct{})}
	go func() { s.err = cmd.Wait(); close(s.exited) }()
	t.Cleanup(func() {
		select {
		case <-s.exited:
		default:
			cmd.Process.Kill()
			<-s.exited
		}
	})
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cl := mcp.NewClient(&mcp.Implementation{Name: "serve-test", Version: "1"}, nil)
	s.cs, err = cl.Connect(ctx, &mcp.IOTransport{Reader: stdout, Writer: stdin}, nil)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func (s *served) call(t *testing.T, p *mcp.CallToolParams) *mcp.CallToolResult {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	res, err := s.cs.CallTool(ctx, p)
	if err != nil {
		t.Fatal(err)
	}
	return res
}

func resultText(r *mcp.CallToolResult) string {
	var b strings.Builder
	for _, c := range r.Content {
		if tc, ok := c.(*mcp.TextContent); ok {
			b.WriteString(tc.Text)
		}
	}
	return b.String()
}

// wait waits for the runner to exit and returns its wait status.
func (s *served) wait(t *testing.T, within time.Duration) syscall.WaitStatus {
	t.Helper()
	select {
	case <-s.exited:
		return s.cmd.ProcessState.Sys().(syscall.WaitStatus)
	case <-time.After(within):
		s.cmd.Process.Kill()
		t.Fatalf("the runner did not exit within %s", within)
	}
	return 0
}

// ended reads the session.ended events of topic.
func ended(t *testing.T, brokers []string, topic string, want int) []*events.SessionEnded {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.ConsumeTopics(topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.FetchMaxWait(200*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	var out []*events.SessionEnded
	for len(out) < want && ctx.Err() == nil {
		cl.PollFetches(ctx).EachRecord(func(r *kgo.Record) {
			if e, err := events.Decode(r.Value); err == nil && e.EventType == events.TypeSessionEnded {
				p, _ := e.DecodePayload()
				out = append(out, p.(*events.SessionEnded))
			}
		})
	}
	return out
}

// spooled counts the bytes in the runner's spool: an event not
// acknowledged before exit waits there.
func spooled(t *testing.T, dir string) int64 {
	t.Helper()
	var n int64
	filepath.Walk(dir, func(_ string, fi os.FileInfo, err error) error {
		if err == nil && fi.Mode().IsRegular() {
			n += fi.Size()
		}
		return nil
	})
	return n
}

// Codex ends the runner with SIGTERM after closing its pipes: the log
// lines the close writes to the dead stderr must not kill the runner
// before session.ended.
func TestServeClosedStderrStillEndsSession(t *testing.T) {
	brokers := testenv.Kafka(t)
	e := newServeEnv(t, brokers)
	t.Cleanup(func() { deleteTopics(brokers, e.topics) })
	s := e.start(t, nil, "--log-level", "debug")
	if res := s.call(t, &mcp.CallToolParams{Name: "shell", Arguments: map[string]any{"command": "echo hi"}}); res.IsError {
		t.Fatalf("shell: %s", resultText(res))
	}
	if err := s.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	st := s.wait(t, 30*time.Second)
	if st.Signaled() {
		t.Fatalf("the runner was killed by %v (SIGPIPE not ignored?)", st.Signal())
	}
	got := ended(t, brokers, e.topics.Events, 1)
	if len(got) != 1 || got[0].Reason != events.EndShutdown || got[0].Counts.ToolCalls != 1 {
		for _, g := range got {
			t.Errorf("session.ended: %+v", *g)
		}
		t.Fatalf("%d session.ended, want 1 with reason shutdown after 1 call", len(got))
	}
}

// Claude Code sends SIGINT, then SIGTERM about 100 ms later, then kills:
// session.ended must be acknowledged by Kafka within that budget, and the
// SIGTERM must not cut the runner's close short.
func TestServeSIGINTClosesWithinBudget(t *testing.T) {
	brokers := testenv.Kafka(t)
	e := newServeEnv(t, brokers)
	t.Cleanup(func() { deleteTopics(brokers, e.topics) })
	stderr := &lineClock{seen: map[string]time.Time{}}
	s := e.start(t, stderr, "--log-level", "info")
	if res := s.call(t, &mcp.CallToolParams{Name: "write_file", Arguments: map[string]any{"path": "a.txt", "content": "x"}}); res.IsError {
		t.Fatalf("write_file: %s", resultText(res))
	}
	if res := s.call(t, &mcp.CallToolParams{Name: "shell", Arguments: map[string]any{"command": "cat a.txt"}}); res.IsError {
		t.Fatalf("shell: %s", resultText(res))
	}
	// A call still running when the agent quits: the shutdown cuts it.
	go s.cs.CallTool(context.Background(), &mcp.CallToolParams{Name: "shell", Arguments: map[string]any{"command": "sleep 30"}})
	time.Sleep(300 * time.Millisecond)
	t0 := time.Now()
	if err := s.cmd.Process.Signal(syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	time.AfterFunc(100*time.Millisecond, func() { s.cmd.Process.Signal(syscall.SIGTERM) })
	st := s.wait(t, 30*time.Second)
	exited := time.Since(t0)
	recorded, ok := stderr.at(`msg="session.ended recorded"`)
	if !ok {
		t.Fatalf("no session.ended recorded on stderr:\n%s", stderr.String())
	}
	took := recorded.Sub(t0)
	t.Logf("SIGINT → session.ended acknowledged: %s (budget 100 ms); → exit: %s", took.Round(time.Millisecond), exited.Round(time.Millisecond))
	if st.Signaled() || st.ExitStatus() != 0 {
		t.Errorf("exit status %v; stderr:\n%s", st, stderr.String())
	}
	if n := spooled(t, e.spool); n != 0 {
		t.Errorf("%d bytes left in the spool: session.ended was not acknowledged before exit", n)
	}
	got := ended(t, brokers, e.topics.Events, 1)
	if len(got) != 1 || got[0].Reason != events.EndShutdown {
		for _, g := range got {
			t.Errorf("session.ended: %+v", *g)
		}
		t.Fatalf("%d session.ended, want 1 with reason shutdown", len(got))
	}
	if took > 100*time.Millisecond {
		t.Errorf("SIGINT → session.ended acknowledged took %s, over Claude Code's 100 ms before SIGTERM", took.Round(time.Millisecond))
	}
}

// lineClock is a stderr that notes when each line arrived.
type lineClock struct {
	mu   sync.Mutex
	buf  strings.Builder
	part string
	seen map[string]time.Time
	all  []string
}

func (l *lineClock) Write(p []byte) (int, error) {
	now := time.Now()
	l.mu.Lock()
	defer l.mu.Unlock()
	l.buf.Write(p)
	l.part += string(p)
	for {
		i := strings.IndexByte(l.part, '\n')
		if i < 0 {
			break
		}
		l.all = append(l.all, l.part[:i])
		l.seen[l.part[:i]] = now
		l.part = l.part[i+1:]
	}
	return len(p), nil
}

// at returns when the first line containing sub arrived.
func (l *lineClock) at(sub string) (time.Time, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, line := range l.all {
		if strings.Contains(line, sub) {
			return l.seen[line], true
		}
	}
	return time.Time{}, false
}

func (l *lineClock) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}

// With Kafka unreachable at start the runner serves anyway: the tools are
// listed and every call is refused audit_unavailable; once a broker
// answers on that address, calls run.
func TestServeKafkaDownAtStart(t *testing.T) {
	testenv.Podman(t)
	// A loopback port where nothing listens (yet).
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	addr := "127.0.0.1:" + strconv.Itoa(port)
	e := newServeEnv(t, []string{addr})
	var stderr lockedWriter
	stderr.w = &strings.Builder{}
	s := e.start(t, &stderr, "--log-level", "info")
	ctx := context.Background()
	tools, err := s.cs.ListTools(ctx, nil)
	if err != nil || len(tools.Tools) != 4 {
		t.Fatalf("tools/list with Kafka down: %v %v", err, tools)
	}
	res := s.call(t, &mcp.CallToolParams{Name: "shell", Arguments: map[string]any{"command": "touch ran.marker"}})
	sc, _ := res.StructuredContent.(map[string]any)
	if !res.IsError || sc["reason_code"] != "audit_unavailable" {
		t.Fatalf("call with Kafka down: %v %q", sc, resultText(res))
	}
	if _, err := os.Stat(filepath.Join(e.ws, "ran.marker")); err == nil {
		t.Fatal("the refused call ran")
	}

	// Kafka comes back on the same address: a fake broker this test owns.
	c, err := kfake.NewCluster(kfake.Ports(port), kfake.NumBrokers(1))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	deadline := time.Now().Add(45 * time.Second)
	for {
		res = s.call(t, &mcp.CallToolParams{Name: "shell", Arguments: map[string]any{"command": "touch ran.marker"}})
		if !res.IsError {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("calls still refused after Kafka came back: %q\nstderr:\n%s", resultText(res), stderr.String())
		}
		time.Sleep(500 * time.Millisecond)
	}
	if _, err := os.Stat(filepath.Join(e.ws, "ran.marker")); err != nil {
		t.Errorf("the call after recovery did not run: %v", err)
	}
	s.cs.Close()
	s.wait(t, 30*time.Second)
}

type lockedWriter struct {
	mu sync.Mutex
	w  *strings.Builder
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

func (l *lockedWriter) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.String()
}
