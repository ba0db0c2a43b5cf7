package faults

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/agentaudit/agentaudit/internal/eventlog"
	"github.com/agentaudit/agentaudit/internal/eventlog/eventlogtest"
	"github.com/agentaudit/agentaudit/internal/events"
	"github.com/agentaudit/agentaudit/internal/store"
	"github.com/agentaudit/agentaudit/internal/testenv"
	"github.com/agentaudit/agentaudit/internal/testenv/faultreport"
)

// buildTags are the Makefile's GOTAGS: the binaries link the Podman
// bindings, which compile only as a pure-Go remote client.
const buildTags = "remote,containers_image_openpgp,exclude_graphdriver_btrfs,exclude_graphdriver_devicemapper"

var (
	buildOnce sync.Once
	binDir    string
	buildErr  error
)

// binary returns the path of cmd/<name>, built once per test binary (the
// cases kill and restart the real binaries, not their packages).
func binary(t testing.TB, name string) string {
	t.Helper()
	buildOnce.Do(func() {
		root, err := testenv.Root()
		if err != nil {
			buildErr = err
			return
		}
		binDir, buildErr = os.MkdirTemp("", "agentaudit-faults-bin-")
		if buildErr != nil {
			return
		}
		gobin := filepath.Join(runtime.GOROOT(), "bin", "go")
		cmd := exec.Command(gobin, "build", "-tags", buildTags, "-o", binDir+"/", "./cmd/ingest", "./cmd/detect")
		cmd.Dir = root
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := cmd.CombinedOutput(); err != nil {
			buildErr = fmt.Errorf("go build: %v: %s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return filepath.Join(binDir, name)
}

func TestMain(m *testing.M) {
	code := m.Run()
	if binDir != "" {
		os.RemoveAll(binDir)
	}
	os.Exit(code)
}

func suffix() string {
	var b [4]byte
	rand.Read(b[:])
	return fmt.Sprintf("%d.%s", os.Getpid(), hex.EncodeToString(b[:]))
}

// env is one case's private topics and ClickHouse database on the real
// services, so cases never see each other's events.
type env struct {
	t       testing.TB
	brokers []string
	topics  eventlog.Topics
	chAddr  string
	db      string
	admin   *store.Store
	group   string
}

// newEnv creates three-partition topics (2 MiB records allowed, for the
// oversized dead letter) and a migrated database, both removed at the end.
func newEnv(t testing.TB) *env { return newEnvWith(t, true) }

// newTopicsEnv is newEnv without a database, for cases that end in Kafka.
func newTopicsEnv(t testing.TB) *env { return newEnvWith(t, false) }

func newEnvWith(t testing.TB, withDB bool) *env {
	t.Helper()
	awaitServices(t)
	brokers := testenv.Kafka(t)
	sfx := suffix()
	name := strings.ToLower(strings.NewReplacer("/", ".", "_", ".", " ", ".").Replace(t.Name())) + "." + sfx
	e := &env{
		t: t, brokers: brokers,
		topics: eventlog.Topics{Events: "test.faults.events." + name, Approvals: "test.faults.approvals." + name, DLQ: "test.faults.dlq." + name},
		db:     "test_faults_" + strings.ReplaceAll(sfx, ".", "_"),
		group:  "test-faults-" + sfx,
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if withDB {
		e.makeDB(ctx)
	}
	e.makeTopics(ctx)
	return e
}

func (e *env) makeDB(ctx context.Context) {
	t := e.t
	t.Helper()
	e.chAddr = testenv.ClickHouse(t)
	all, _ := testenv.Env()
	admin, err := store.Open(ctx, store.Config{Addr: e.chAddr, User: testenv.Get(t, "CLICKHOUSE_ADMIN_USER"), Password: all["CLICKHOUSE_ADMIN_PASSWORD"], Database: "default"})
	if err != nil {
		t.Fatalf("open ClickHouse as admin: %v", err)
	}
	if err := admin.Conn().Exec(ctx, "CREATE DATABASE "+e.db); err != nil {
		t.Fatal(err)
	}
	admin.Close()
	// The admin handle used for counting lives in the case's database, so
	// the store package's migrations create its tables.
	e.admin = e.openAdmin(ctx)
	if _, err := e.admin.Migrate(ctx); err != nil {
		t.Fatalf("migrate %s: %v", e.db, err)
	}
	t.Cleanup(func() {
		// A case may have restarted ClickHouse: reconnect for the drop.
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		e.admin.Close()
		a := e.openAdmin(ctx)
		if err := a.Conn().Exec(ctx, "DROP DATABASE IF EXISTS "+e.db); err != nil {
			t.Errorf("drop %s: %v", e.db, err)
		}
		a.Close()
	})
}

func (e *env) makeTopics(ctx context.Context) {
	t, brokers := e.t, e.brokers
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	big := "2097152"
	if _, err := adm.CreateTopics(ctx, 3, 1, map[string]*string{"max.message.bytes": &big}, e.topics.Events, e.topics.Approvals); err != nil {
		t.Fatal(err)
	}
	if _, err := adm.CreateTopic(ctx, 3, 1, nil, e.topics.DLQ); err != nil {
		t.Fatal(err)
	}
	eventlogtest.WaitLeaders(e.t, ctx, adm, e.topics.Events, e.topics.Approvals, e.topics.DLQ)
	t.Cleanup(func() {
		cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...))
		if err != nil {
			return
		}
		defer cl.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		kadm.NewClient(cl).DeleteTopics(ctx, e.topics.Events, e.topics.Approvals, e.topics.DLQ)
	})
}

func (e *env) openAdmin(ctx context.Context) *store.Store {
	e.t.Helper()
	all, _ := testenv.Env()
	var s *store.Store
	var err error
	// ClickHouse may still be starting after a restart.
	for deadline := time.Now().Add(60 * time.Second); ; time.Sleep(500 * time.Millisecond) {
		s, err = store.Open(ctx, store.Config{Addr: e.chAddr, User: testenv.Get(e.t, "CLICKHOUSE_ADMIN_USER"), Password: all["CLICKHOUSE_ADMIN_PASSWORD"], Database: e.db})
		if err == nil || time.Now().After(deadline) {
			break
		}
	}
	if err != nil {
		e.t.Fatalf("open ClickHouse database %s as admin: %v", e.db, err)
	}
	return s
}

// query runs a one-value count on the case's database, retrying while
// ClickHouse is down or restarting.
func (e *env) count(q string) (uint64, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var n uint64
	err := e.admin.Conn().QueryRow(ctx, strings.ReplaceAll(q, "{db}", e.db)).Scan(&n)
	return n, err
}

func (e *env) mustCount(q string) uint64 {
	e.t.Helper()
	n, err := e.count(q)
	if err != nil {
		e.t.Fatalf("%s: %v", q, err)
	}
	return n
}

// storedIDs returns, per event id, how many rows a FINAL query sees.
func (e *env) storedIDs() map[uint64]uint64 {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	rows, err := e.admin.Conn().Query(ctx, "SELECT event_id, count() FROM "+e.db+".events FINAL GROUP BY event_id")
	if err != nil {
		e.t.Fatal(err)
	}
	defer rows.Close()
	out := map[uint64]uint64{}
	for rows.Next() {
		var id, n uint64
		if err := rows.Scan(&id, &n); err != nil {
			e.t.Fatal(err)
		}
		out[id] = n
	}
	if err := rows.Err(); err != nil {
		e.t.Fatal(err)
	}
	return out
}

// waitStored waits until every id in want is stored, or timeout. It does
// not fail: the accounting that follows reports what is missing.
func (e *env) waitStored(want int, timeout time.Duration) bool {
	e.t.Helper()
	deadline := time.Now().Add(timeout)
	var n uint64
	var err error
	for time.Now().Before(deadline) {
		n, err = e.count("SELECT uniqExact(event_id) FROM {db}.events")
		if err == nil && n >= uint64(want) {
			return true
		}
		time.Sleep(250 * time.Millisecond)
	}
	e.t.Errorf("%d distinct events stored after %s, want %d (last error %v)", n, timeout, want, err)
	return false
}

// accounting compares the ids a case's writers had acknowledged with what
// ClickHouse holds.
type accounting struct {
	Expected   int    // distinct ids acknowledged by Kafka
	Stored     int64  // distinct ids stored
	Rows       uint64 // rows before merges (redelivered copies included)
	Lost       int64  // acknowledged, not stored
	Duplicated int64  // extra rows a FINAL query sees
	Unexpected int64  // stored, never produced
	ChainBreak uint64
}

func (e *env) account(want []string) accounting {
	e.t.Helper()
	stored := e.storedIDs()
	a := accounting{Expected: len(want), Stored: int64(len(stored))}
	seen := make(map[uint64]bool, len(want))
	for _, s := range want {
		id, err := events.ParseID(s)
		if err != nil {
			e.t.Fatalf("produced id %q: %v", s, err)
		}
		seen[uint64(id)] = true
	}
	if len(seen) != len(want) {
		e.t.Errorf("the writers issued %d ids for %d events: ids repeat", len(seen), len(want))
	}
	for id := range seen {
		n := stored[id]
		if n == 0 {
			a.Lost++
			if a.Lost <= 5 {
				e.t.Errorf("event %d acknowledged by Kafka, not in ClickHouse", id)
			}
		}
	}
	for id, n := range stored {
		if n > 1 {
			a.Duplicated += int64(n - 1)
			e.t.Errorf("event %d seen %d times under FINAL", id, n)
		}
		if !seen[id] {
			a.Unexpected++
			e.t.Errorf("event %d stored but never produced", id)
		}
	}
	a.Rows = e.mustCount("SELECT count() FROM {db}.events")
	a.ChainBreak = e.mustCount("SELECT count() FROM {db}.chain_breaks")
	return a
}

// proc is one run of a binary in its own process group.
type proc struct {
	name string
	cmd  *exec.Cmd
	done chan error
	err  error
}

func start(t testing.TB, name string, bin string, args []string, env []string) *proc {
	t.Helper()
	cmd := exec.Command(bin, args...)
	cmd.Env = append(os.Environ(), env...)
	cmd.Stdout = testenv.Writer{T: t}
	cmd.Stderr = testenv.Writer{T: t}
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", name, err)
	}
	p := &proc{name: name, cmd: cmd, done: make(chan error, 1)}
	go func() { p.done <- cmd.Wait() }()
	t.Cleanup(func() {
		if !p.exited() {
			cmd.Process.Kill()
			<-p.done
		}
	})
	return p
}

func (p *proc) exited() bool {
	if p.cmd.ProcessState != nil {
		return true
	}
	select {
	case err := <-p.done:
		p.err = err
		p.done <- err
		return true
	default:
		return false
	}
}

// wait waits for the exit and returns how it ended.
func (p *proc) wait(t testing.TB, timeout time.Duration) error {
	t.Helper()
	select {
	case err := <-p.done:
		p.done <- err
		return err
	case <-time.After(timeout):
		t.Fatalf("%s still running %s after it was asked to stop", p.name, timeout)
		return nil
	}
}

// kill SIGKILLs the process and checks that the signal is what ended it.
func (p *proc) kill(t testing.TB) {
	t.Helper()
	if p.exited() {
		t.Fatalf("%s exited before it was killed: %v", p.name, p.wait(t, 0))
	}
	p.cmd.Process.Signal(syscall.SIGKILL)
	err := p.wait(t, 30*time.Second)
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.Sys().(syscall.WaitStatus).Signal() != syscall.SIGKILL {
		t.Fatalf("%s ended with %v, want killed by SIGKILL", p.name, err)
	}
}

// term sends SIGTERM and fails unless the process exits 0 within timeout.
func (p *proc) term(t testing.TB, timeout time.Duration) {
	t.Helper()
	p.cmd.Process.Signal(syscall.SIGTERM)
	if err := p.wait(t, timeout); err != nil {
		t.Errorf("%s on SIGTERM: %v, want exit 0", p.name, err)
	}
}

// ingest starts the real ingest binary on the case's topics and database.
func (e *env) ingest(t testing.TB, extra ...string) *proc {
	t.Helper()
	args := []string{"run",
		"-brokers", strings.Join(e.brokers, ","), "-group", e.group,
		"-topic-events", e.topics.Events, "-topic-approvals", e.topics.Approvals, "-topic-dlq", e.topics.DLQ,
		"-clickhouse-addr", e.chAddr, "-clickhouse-user", testenv.Get(t, "CLICKHOUSE_USER"), "-database", e.db,
		"-batch-rows", "500", "-batch-wait", "200ms", "-retry-min", "50ms", "-retry-max", "1s",
		"-chain-grace", "20s", "-metrics-addr", "off", "-log-level", "warn"}
	args = append(args, extra...)
	return start(t, "ingest", binary(t, "ingest"), args, []string{"CLICKHOUSE_PASSWORD=" + testenv.Get(t, "CLICKHOUSE_PASSWORD")})
}

func freeAddr(t testing.TB) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

func httpBody(url string) string {
	c := http.Client{Timeout: 2 * time.Second}
	resp, err := c.Get(url)
	if err != nil {
		return ""
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}

// metric returns the value of an exact series line in a /metrics body.
func metric(body, series string) string {
	for _, l := range strings.Split(body, "\n") {
		if v, ok := strings.CutPrefix(l, series+" "); ok {
			return v
		}
	}
	return ""
}

// caseRow makes sure a case that stops before its accounting (t.Fatal)
// still has a failed row in the fault report. Call the returned func
// with the case's accounting instead of faultreport.Record.
func caseRow(t *testing.T, name string) func(faultreport.Case) {
	recorded := false
	t.Cleanup(func() {
		if !recorded {
			faultreport.Record(t, faultreport.Case{Name: name, Package: pkg, Detail: "stopped before its accounting; see the test log"})
		}
	})
	return func(c faultreport.Case) {
		t.Helper()
		recorded = true
		c.Name, c.Package = name, pkg
		faultreport.Record(t, c)
	}
}

// awaitServices gives Kafka and ClickHouse a few minutes to answer before
// the case starts: in the serial fault phase the previous package's case
// may have just restarted one, and a SIGKILLed broker recovers every
// partition's log before it listens. A service still down after that
// fails the case (testenv.Kafka, testenv.ClickHouse).
func awaitServices(t testing.TB) {
	t.Helper()
	addrs := []string{strings.Split(testenv.Get(t, "KAFKA_BROKERS"), ",")[0], testenv.Get(t, "CLICKHOUSE_ADDR")}
	deadline := time.Now().Add(restartWithin)
	for _, addr := range addrs {
		waited := time.Now()
		for {
			c, err := net.DialTimeout("tcp", addr, time.Second)
			if err == nil {
				c.Close()
				break
			}
			if time.Now().After(deadline) {
				return
			}
			time.Sleep(time.Second)
		}
		if d := time.Since(waited); d > time.Second {
			t.Logf("waited %s for %s to answer", d.Round(time.Second), addr)
		}
	}
}
