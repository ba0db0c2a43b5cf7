package demo

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/agentaudit/agentaudit/internal/approvals"
	"github.com/agentaudit/agentaudit/internal/events"
	"github.com/agentaudit/agentaudit/internal/testenv"
)

const goTags = "remote,containers_image_openpgp,exclude_graphdriver_btrfs,exclude_graphdriver_devicemapper"

// outcome is what TestDemo compares: each step's result as the system
// decided it.
type outcome struct {
	OrdinaryExit    []int
	OrdinaryReasons []events.ReasonCode
	Notes           string
	PythonPlatform  bool

	AllowedBody  string
	DeniedStatus string
	DeniedReason string

	AskedKind, AskedRule string
	AskedStatus          approvals.Status
	AskedBody            string

	ProtectedKind, ProtectedRule string
	ProtectedStatus              approvals.Status
	ProtectedReason              events.ReasonCode
	HookWritten                  bool

	HoldRule      string
	HeldReason    events.ReasonCode
	Released      int
	AfterHold     string
	AfterHoldDeny bool

	SessionEnded      int
	AllStored         bool
	VerifyCode        int
	VerifyOK          bool
	NoUnapproved      bool
	ApprovalsInReport bool
	HTMLReports       int
}

// TestDemo runs the whole demo, non-interactively, against the real Kafka,
// ClickHouse and Podman (and the real ingest, detect, approvals service
// and runner binaries), and checks what each step did.
func TestDemo(t *testing.T) {
	brokers := testenv.Kafka(t)
	testenv.ClickHouse(t)
	testenv.Podman(t)
	root, err := testenv.Root()
	if err != nil {
		t.Fatal(err)
	}
	env, err := testenv.Env()
	if err != nil {
		t.Fatal(err)
	}
	// The sandbox user must traverse the workspace's parents and reach
	// sandbox-supervisor (mounted into the sandbox): not under t.TempDir's
	// 0700 root.
	dir, err := os.MkdirTemp("", "agentaudit-demo-test-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	os.Chmod(dir, 0o755)
	bin := filepath.Join(dir, "bin")
	build := exec.Command("go", "build", "-tags", goTags, "-o", bin+"/", "./cmd/...")
	build.Dir, build.Env = root, append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build ./cmd/...: %v\n%s", err, out)
	}
	prefix := fmt.Sprintf("test-demo-%d", time.Now().UnixNano())
	t.Cleanup(func() { deleteTopics(brokers, prefix) })
	listen, err := freePort()
	if err != nil {
		t.Fatal(err)
	}

	var out syncBuffer
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	res, err := Run(ctx, Config{Root: root, Dir: dir, BinDir: bin, Prefix: prefix, ApproveListen: listen,
		Env: env, StepTimeout: 60 * time.Second, Out: &out})
	if err != nil {
		t.Errorf("Run: %v", err) // first: CI shows a failure's head and tail
	}
	t.Logf("demo output:\n%s", out.String())
	if err != nil {
		for _, name := range []string{"runner", "ingest", "detect", "approve"} {
			t.Logf("%s log ends:\n%s", name, tail(filepath.Join(dir, "logs", name+".log"), 30))
		}
		t.Fatalf("Run: %v", err)
	}

	got := outcome{
		Notes:          res.Ordinary[2].Stdout,
		PythonPlatform: strings.HasPrefix(res.Ordinary[3].Stdout, "Linux-"),
		AllowedBody:    res.Allowed.Stdout, DeniedStatus: res.DeniedStatus, DeniedReason: res.DeniedReason,
		AskedKind: res.AskedApproval.Kind, AskedRule: res.AskedApproval.RuleID,
		AskedStatus: res.AskedApproval.Status, AskedBody: res.Asked.Stdout,
		ProtectedKind: res.ProtectedApproval.Kind, ProtectedRule: res.ProtectedApproval.RuleID,
		ProtectedStatus: res.ProtectedApproval.Status, ProtectedReason: res.Protected.Reason,
		HookWritten: res.HookWritten,
		HoldRule:    res.Hold.RuleID, HeldReason: res.HeldCall.Reason, Released: res.Released.Released,
		AfterHold: res.AfterHold.Stdout, AfterHoldDeny: res.AfterHold.Denied,
		SessionEnded: res.Produced[events.TypeSessionEnded],
		AllStored:    res.Stored == total(res.Produced) && res.Stored > 0,
		VerifyCode:   res.VerifyCode, VerifyOK: strings.HasSuffix(res.Verify, ": OK"),
		NoUnapproved: strings.Contains(res.Reports["unapproved_actions"], "(0 rows)"),
		ApprovalsInReport: strings.Contains(res.Reports["approvals"], res.AskedApproval.ID) &&
			strings.Contains(res.Reports["approvals"], res.ProtectedApproval.ID),
	}
	for _, o := range res.Ordinary {
		got.OrdinaryExit = append(got.OrdinaryExit, o.ExitCode)
		got.OrdinaryReasons = append(got.OrdinaryReasons, o.Reason)
	}
	for _, f := range res.HTMLReports {
		if b, err := os.ReadFile(f); err == nil && bytes.Contains(bytes.ToLower(b[:min(len(b), 200)]), []byte("<!doctype html")) {
			got.HTMLReports++
		}
	}
	allow := events.ReasonAllowlisted
	want := outcome{
		OrdinaryExit:    []int{0, 0, 0, 0},
		OrdinaryReasons: []events.ReasonCode{allow, allow, allow, allow},
		Notes:           "hello from the agent\n", PythonPlatform: true,
		AllowedBody:  allowedBody,
		DeniedStatus: "HTTP/1.1 403 Forbidden", DeniedReason: string(events.ReasonLoopbackAddress),
		AskedKind: "egress", AskedRule: "demo-ask-server", AskedStatus: approvals.StatusApproved,
		AskedBody:     askBody + "\nHTTP 200",
		ProtectedKind: "tool_call", ProtectedRule: "protected-path-writes", ProtectedStatus: approvals.StatusDenied,
		ProtectedReason: events.ReasonApprovalDenied, HookWritten: false,
		HoldRule: "persistence.git_hooks_write", HeldReason: events.ReasonSessionHeld, Released: 1,
		AfterHold: "back to work\nhello from the agent\n", AfterHoldDeny: false,
		SessionEnded: 1, AllStored: true, VerifyCode: 0, VerifyOK: true, NoUnapproved: true,
		ApprovalsInReport: true, HTMLReports: 1 + len(reportNames),
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("demo outcome (-want +got):\n%s", diff)
	}
	t.Logf("session %s: %d events produced, %d stored; demo took %s", res.SessionID, total(res.Produced), res.Stored, res.Total)
}

// syncBuffer is a bytes.Buffer safe for the demo's concurrent steps.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func deleteTopics(brokers []string, prefix string) {
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...))
	if err != nil {
		return
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	adm := kadm.NewClient(cl)
	names := []string{prefix + ".events", prefix + ".approvals", prefix + ".dlq",
		prefix + ".detect.state", prefix + ".detect.repartition"}
	adm.DeleteTopics(ctx, names...)
	// Consumer groups of the run: ingest's and detect's.
	adm.DeleteGroups(ctx, prefix+"-ingest", prefix+"-detect")
}
