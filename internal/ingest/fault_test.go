package ingest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/agentaudit/agentaudit/internal/events"
	"github.com/agentaudit/agentaudit/internal/testenv"
	"github.com/agentaudit/agentaudit/internal/testenv/faultreport"
)

// record accounts for a fault case: produced is every record Kafka
// acknowledged (ProduceSync returned), stored the distinct event ids in
// ClickHouse, lost the produced ids not stored, duplicated the extra rows
// a FINAL query sees; then it records the case in the fault report. A
// chain break fails the case: every case loads unbroken chains.
func (e *env) record(t *testing.T, name string, recs []*kgo.Record, detail string) {
	t.Helper()
	e.noBreaks(t)
	produced := map[uint64]bool{}
	for _, r := range recs {
		env, err := events.Decode(r.Value)
		if err != nil {
			t.Fatalf("produced record does not decode: %v", err)
		}
		id, err := events.ParseID(env.EventID)
		if err != nil {
			t.Fatal(err)
		}
		produced[uint64(id)] = true
	}
	rows, err := e.admin.Conn().Query(context.Background(), "SELECT event_id, count() FROM "+e.cfg.Database+".events FINAL GROUP BY event_id")
	if err != nil {
		t.Fatal(err)
	}
	stored := map[uint64]uint64{}
	for rows.Next() {
		var id, n uint64
		if err := rows.Scan(&id, &n); err != nil {
			t.Fatal(err)
		}
		stored[id] = n
	}
	rows.Close()
	var lost, dup, unexpected int64
	for id := range produced {
		if stored[id] == 0 {
			lost++
		}
	}
	for id, n := range stored {
		dup += int64(n - 1)
		if !produced[id] {
			unexpected++
		}
	}
	if unexpected != 0 {
		t.Errorf("%d stored events were never produced", unexpected)
	}
	faultreport.Record(t, faultreport.Case{
		Name: name, Package: "internal/ingest",
		Produced: int64(len(recs)), Stored: int64(len(stored)), DLQ: int64(e.uint64("SELECT count() FROM {db}.dlq_events")),
		Lost: lost, Duplicated: dup,
		Detail: fmt.Sprintf("%s; %d rows before merges, %d chain breaks", detail,
			e.uint64("SELECT count() FROM {db}.events"), e.uint64("SELECT count() FROM {db}.chain_breaks")),
	})
}

// sub runs ingest.Run with cfg in a child process (this test binary; see
// TestMain).
func (e *env) sub(cfg Config, extraEnv ...string) (*exec.Cmd, <-chan error) {
	e.t.Helper()
	cfg.Logger = nil
	js, err := json.Marshal(cfg)
	if err != nil {
		e.t.Fatal(err)
	}
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(append(os.Environ(), subprocessEnv+"="+string(js)), extraEnv...)
	cmd.Stderr = testenv.Writer{T: e.t}
	if err := cmd.Start(); err != nil {
		e.t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	e.t.Cleanup(func() { cmd.Process.Kill() })
	return cmd, done
}

func waitExit(t *testing.T, done <-chan error, timeout time.Duration) error {
	t.Helper()
	select {
	case err := <-done:
		return err
	case <-time.After(timeout):
		t.Fatalf("ingest subprocess still running after %s", timeout)
		return nil
	}
}

// TestFaultKillBetweenInsertAndCommit: the ingester is SIGKILLed right
// after ClickHouse accepted a batch and before its offsets were committed;
// after a restart every event is stored exactly once under FINAL.
func TestFaultKillBetweenInsertAndCommit(t *testing.T) {
	e := newEnv(t)
	recs := sessions(t, e.cfg.Topics, 10, "kill")
	n := uint64(len(recs))
	e.produce(recs...)
	cfg := e.cfg
	cfg.BatchRows = 50

	_, done := e.sub(cfg, CrashAfterInsertEnv+"=1")
	err := waitExit(t, done, 60*time.Second)
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.Sys().(syscall.WaitStatus).Signal() != syscall.SIGKILL {
		t.Fatalf("first run ended with %v, want killed by SIGKILL", err)
	}
	before := e.uint64("SELECT count() FROM {db}.events")
	lagBefore := e.groupLag(cfg.Group)
	if before == 0 || lagBefore != int64(n) {
		t.Fatalf("after the kill: %d rows stored, group lag %d; want rows stored and nothing committed (lag %d)", before, lagBefore, n)
	}
	// The redelivered rows are counted before merges fold them away: a
	// background merge of the replacing table would hide the redelivery.
	if err := e.admin.Conn().Exec(context.Background(), "SYSTEM STOP MERGES "+e.cfg.Database+".events"); err != nil {
		t.Fatalf("stop merges: %v", err)
	}

	cmd, done := e.sub(cfg)
	e.waitRows("SELECT count() FROM {db}.events FINAL", n, 60*time.Second)
	cmd.Process.Signal(syscall.SIGTERM)
	if err := waitExit(t, done, 60*time.Second); err != nil {
		t.Fatalf("second run on SIGTERM: %v, want exit 0", err)
	}
	raw := e.uint64("SELECT count() FROM {db}.events")
	final := e.uint64("SELECT count() FROM {db}.events FINAL")
	ids := e.uint64("SELECT uniqExact(event_id) FROM {db}.events")
	breaks := e.uint64("SELECT count() FROM {db}.chain_breaks")
	lag := e.groupLag(cfg.Group)
	t.Logf("sent %d; stored before kill %d; after restart: rows %d (redelivered duplicates included), FINAL %d, distinct ids %d, chain breaks %d, lag %d",
		n, before, raw, final, ids, breaks, lag)
	if final != n || ids != n || breaks != 0 || lag != 0 {
		t.Errorf("after restart: FINAL %d, distinct ids %d, chain breaks %d, lag %d; want %d, %d, 0, 0", final, ids, breaks, lag, n, n)
	}
	if raw < n+before {
		t.Errorf("rows without FINAL = %d, want at least %d: the killed batch should have been redelivered", raw, n+before)
	}
	e.record(t, "ingest SIGKILLed between insert and commit", recs,
		fmt.Sprintf("killed after its first insert (%d rows in, nothing committed), restarted; batch redelivered", before))
}

// TestFaultSIGTERMFlushesAndCommits: records waiting in a batch when
// SIGTERM arrives are written and committed, and the process exits 0.
func TestFaultSIGTERMFlushesAndCommits(t *testing.T) {
	e := newEnv(t)
	recs := sessions(t, e.cfg.Topics, 5, "term")
	n := uint64(len(recs))
	cfg := e.cfg
	// Nothing would be flushed for a minute but for the signal.
	cfg.BatchRows, cfg.BatchWait = 100_000, time.Minute
	port := freeAddr(t)
	cfg.MetricsAddr = port
	cmd, done := e.sub(cfg)
	e.produce(recs...)
	// Wait until every record was consumed (and sits in the batch).
	deadline := time.Now().Add(60 * time.Second)
	for {
		var consumed float64
		if _, body := tryGet("http://" + port + "/metrics"); body != "" {
			for _, tp := range []string{cfg.Topics.Events, cfg.Topics.Approvals} {
				v, _ := strconv.ParseFloat(metric(body, `agentaudit_ingest_records_consumed_total{topic="`+tp+`"}`), 64)
				consumed += v
			}
		}
		if consumed == float64(n) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("consumed %v of %d records after 60s", consumed, n)
		}
		time.Sleep(100 * time.Millisecond)
	}
	if got := e.uint64("SELECT count() FROM {db}.events"); got != 0 {
		t.Fatalf("%d rows before SIGTERM; the batch should still be open", got)
	}
	cmd.Process.Signal(syscall.SIGTERM)
	if err := waitExit(t, done, 60*time.Second); err != nil {
		t.Fatalf("exit on SIGTERM: %v, want 0", err)
	}
	final := e.uint64("SELECT count() FROM {db}.events FINAL")
	lag := e.groupLag(cfg.Group)
	t.Logf("sent %d, stored %d, lag after exit %d", n, final, lag)
	if final != n || lag != 0 {
		t.Errorf("after SIGTERM: %d stored, lag %d; want %d stored and everything committed", final, lag, n)
	}
	e.record(t, "ingest SIGTERMed with a batch open", recs,
		fmt.Sprintf("SIGTERM with %d records consumed and unwritten; flushed and committed, lag %d", n, lag))
}

// TestFaultClickHouseDown: ClickHouse stops for 30 s while events keep
// arriving; ingest retries (metrics and /healthz say so), commits nothing
// it has not written, and loads everything once ClickHouse is back.
func TestFaultClickHouseDown(t *testing.T) {
	e := newEnv(t)
	t.Cleanup(func() { testenv.Start(t, "clickhouse") }) // before the database is dropped
	first := sessions(t, e.cfg.Topics, 5, "chdown-a")
	second := sessions(t, e.cfg.Topics, 5, "chdown-b")
	cfg := e.cfg
	cfg.MetricsAddr = freeAddr(t)
	stop := e.run(cfg)
	e.produce(first...)
	e.waitRows("SELECT count() FROM {db}.events FINAL", uint64(len(first)), 60*time.Second)

	testenv.Stop(t, "clickhouse")
	downAt := time.Now()
	e.produce(second...)
	time.Sleep(30*time.Second - time.Since(downAt))
	if c, err := net.DialTimeout("tcp", cfg.ClickHouseAddr, time.Second); err == nil {
		c.Close()
		t.Fatal("ClickHouse is up again before the 30s were over: something else restarted it (run fault tests under flock /tmp/agentaudit-fault.lock)")
	}
	_, body := get(t, "http://"+cfg.MetricsAddr+"/metrics")
	code, _ := get(t, "http://"+cfg.MetricsAddr+"/healthz")
	retries := metric(body, `agentaudit_ingest_retries_total{op="insert_events"}`)
	up := metric(body, "agentaudit_ingest_clickhouse_up")
	lagDown := e.groupLag(cfg.Group)
	t.Logf("after 30s down: healthz %d, insert retries %s, clickhouse_up %s, group lag %d", code, retries, up, lagDown)
	if code != 503 || retries == "" || retries == "0" || up != "0" || lagDown != int64(len(second)) {
		t.Errorf("while ClickHouse is down: healthz %d, retries %q, clickhouse_up %q, lag %d; want 503, > 0, 0, %d (nothing committed)",
			code, retries, up, lagDown, len(second))
	}
	testenv.Start(t, "clickhouse")
	want := uint64(len(first) + len(second))
	e.waitRows("SELECT count() FROM {db}.events FINAL", want, 120*time.Second)
	stop()
	final := e.uint64("SELECT count() FROM {db}.events FINAL")
	lag := e.groupLag(cfg.Group)
	t.Logf("sent %d, stored %d, lag %d", want, final, lag)
	if final != want || lag != 0 {
		t.Errorf("after recovery: stored %d, lag %d; want %d, 0", final, lag, want)
	}
	e.record(t, "ClickHouse stopped 30 s under ingest", append(first, second...),
		fmt.Sprintf("clean stop; %s insert retries, healthz %d while down, nothing committed (lag %d), lag %d after", retries, code, lagDown, lag))
}

// TestFaultKafkaRestart: the broker restarts under a running ingester,
// which resumes and loads what is produced afterwards.
func TestFaultKafkaRestart(t *testing.T) {
	e := newEnv(t)
	t.Cleanup(func() { testenv.Start(t, "kafka") })
	first := sessions(t, e.cfg.Topics, 3, "kafka-a")
	second := sessions(t, e.cfg.Topics, 3, "kafka-b")
	cfg := e.cfg
	// A restarted broker resumes the topics' fetches at different times:
	// the chain grace must outlast that, as the 30s default does.
	cfg.ChainGrace = 20 * time.Second
	stop := e.run(cfg)
	e.produce(first...)
	e.waitRows("SELECT count() FROM {db}.events FINAL", uint64(len(first)), 60*time.Second)
	testenv.Stop(t, "kafka")
	time.Sleep(5 * time.Second)
	testenv.Start(t, "kafka")
	e.produce(second...)
	want := uint64(len(first) + len(second))
	e.waitRows("SELECT count() FROM {db}.events FINAL", want, 120*time.Second)
	stop()
	if lag := e.groupLag(e.cfg.Group); lag != 0 {
		t.Errorf("lag after stop = %d, want 0", lag)
	}
	// record fails the case on any chain break.
	e.record(t, "Kafka stopped and restarted under ingest", append(first, second...),
		"clean broker stop for 5 s between two loads; ingest resumed")
}

// TestFaultStaticMemberRestart: an ingester with an instance id is
// SIGKILLed and restarted with the same id while events keep arriving. A
// dynamic member's partitions would stay with the dead member until the
// group's session timeout (45 s); the static member gets them back at
// once, so the restarted process stores what arrived meanwhile well
// inside that timeout, each event once.
func TestFaultStaticMemberRestart(t *testing.T) {
	e := newEnv(t)
	cfg := e.cfg
	cfg.InstanceID = "ingest-0"
	before := sessions(t, cfg.Topics, 3, "static-before")
	e.produce(before...)
	cmd, done := e.sub(cfg)
	e.waitRows("SELECT count() FROM {db}.events FINAL", uint64(len(before)), 60*time.Second)
	cmd.Process.Kill()
	if err := waitExit(t, done, 10*time.Second); err == nil {
		t.Fatal("first run exited cleanly, want killed")
	}

	during := sessions(t, cfg.Topics, 3, "static-during")
	e.produce(during...)
	all := append(before, during...)
	start := time.Now()
	cmd, done = e.sub(cfg)
	// 30 s: a restart that waited for the dead member's session to time
	// out could not make it.
	e.waitRows("SELECT count() FROM {db}.events FINAL", uint64(len(all)), 30*time.Second)
	took := time.Since(start)
	cmd.Process.Signal(syscall.SIGTERM)
	if err := waitExit(t, done, 60*time.Second); err != nil {
		t.Fatalf("restarted run on SIGTERM: %v, want exit 0", err)
	}
	if lag := e.groupLag(cfg.Group); lag != 0 {
		t.Errorf("group lag after the restarted run = %d, want 0", lag)
	}
	e.record(t, "ingest SIGKILLed and restarted with its instance id", all,
		fmt.Sprintf("static member ingest-0 SIGKILLed, %d events produced while down; the restart stored them %s after it started (session timeout 45s)",
			len(during), took.Round(100*time.Millisecond)))
}

// noBreaks fails the test, listing them, when chain_breaks holds any row:
// every case here loads unbroken chains.
func (e *env) noBreaks(t *testing.T) {
	t.Helper()
	rows, err := e.admin.Conn().Query(context.Background(),
		"SELECT kind, session_id, runner_id, expected_seq, got_seq, detail FROM "+e.cfg.Database+".chain_breaks FINAL ORDER BY session_id, got_seq")
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	for rows.Next() {
		var kind, sess, runner, detail string
		var want, got uint64
		if err := rows.Scan(&kind, &sess, &runner, &want, &got, &detail); err != nil {
			t.Fatal(err)
		}
		t.Errorf("chain break %s in %s/%s: expected seq %d, got %d: %s", kind, sess, runner, want, got, detail)
	}
}
