package faults

import (
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/agentaudit/agentaudit/internal/testenv"
	"github.com/agentaudit/agentaudit/internal/testenv/faultreport"
)

const pkg = "internal/faults"

// Every load here is bounded twice: writers stop when told, and each
// issues at most perWriter events.
const (
	writers   = 3
	perWriter = 600
	pace      = 40 * time.Millisecond
	// restartWithin bounds a killed service's restart and recovery.
	restartWithin = 5 * time.Minute
)

// report records the case from the load's and ClickHouse's own counts.
func (e *env) report(t *testing.T, record func(faultreport.Case), l *load, a accounting, detail string) {
	t.Helper()
	if a.Unexpected != 0 {
		t.Errorf("%d stored events were never produced", a.Unexpected)
	}
	if a.ChainBreak != 0 {
		t.Errorf("%d chain breaks recorded", a.ChainBreak)
	}
	if acked := l.acked(); acked != int64(a.Expected) {
		t.Errorf("Kafka acknowledged %d of the %d events the writers took", acked, a.Expected)
	}
	dlq := e.mustCount("SELECT count() FROM {db}.dlq_events")
	if dlq != 0 {
		t.Errorf("%d valid events dead-lettered", dlq)
	}
	record(faultreport.Case{
		Produced: l.acked(), Stored: a.Stored, DLQ: int64(dlq),
		Lost: a.Lost, Duplicated: a.Duplicated,
		Detail: fmt.Sprintf("%s; %s; %d rows before merges, %d chain breaks", detail, l.stats(), a.Rows, a.ChainBreak),
	})
}

// TestFaultKafkaKilledUnderLoad SIGKILLs the broker while runner-like
// writers and the ingest binary are busy, and restarts it: writers deny
// calls as audit_unavailable and spool what already happened, and once
// the broker is back every event Kafka acknowledged (directly or from a
// spool) is in ClickHouse exactly once.
func TestFaultKafkaKilledUnderLoad(t *testing.T) {
	killUnderLoad(t, "kafka", "Kafka broker SIGKILLed and restarted under load", 5*time.Second, 90*time.Second,
		func(down time.Duration, _ uint64) string {
			return fmt.Sprintf("broker down %.0fs (SIGKILL, restart with log recovery) while %d writers and ingest ran", down.Seconds(), writers)
		})
}

// TestFaultClickHouseKilledUnderLoad SIGKILLs ClickHouse mid-load and
// restarts it: ingest retries, commits nothing it did not write, and every
// acknowledged event is stored once.
func TestFaultClickHouseKilledUnderLoad(t *testing.T) {
	killUnderLoad(t, "clickhouse", "ClickHouse SIGKILLed and restarted under load", 8*time.Second, 30*time.Second,
		func(down time.Duration, before uint64) string {
			return fmt.Sprintf("ClickHouse down %.0fs (SIGKILL) with %d rows already stored", down.Seconds(), before)
		})
}

// killUnderLoad SIGKILLs service for downFor while the writers and an
// ingest subprocess are busy, restarts it, lets the writers go on, waits
// up to drain for their spools, and reports every acknowledged event's
// fate; detail describes the case from how long the service was down and
// the rows stored before the kill.
func killUnderLoad(t *testing.T, service, name string, downFor, drain time.Duration, detail func(down time.Duration, before uint64) string) {
	record := caseRow(t, name)
	e := newEnv(t)
	restarted := false
	t.Cleanup(func() {
		if !restarted {
			testenv.StartWithin(t, service, restartWithin)
		}
	})
	ing := e.ingest(t)
	l := newLoad(t, e, writers, perWriter)
	l.run(pace)
	time.Sleep(3 * time.Second)
	before, _ := e.count("SELECT count() FROM {db}.events")

	testenv.Kill(t, service)
	downAt := time.Now()
	time.Sleep(downFor)
	if ing.exited() {
		t.Fatalf("ingest exited while %s was down: %v", service, ing.wait(t, 0))
	}
	// A SIGKILLed service recovers its data before it answers; a broker
	// with many topics takes longer than kafka_up waits.
	testenv.StartWithin(t, service, restartWithin)
	restarted = true
	down := time.Since(downAt)
	l.more(perWriter / 2)
	time.Sleep(5 * time.Second)
	l.halt()
	l.drain(drain)

	want := l.sent()
	e.waitStored(len(want), 120*time.Second)
	ing.term(t, 60*time.Second)
	a := e.account(want)
	e.report(t, record, l, a, detail(down, before))
}

// TestFaultIngestSIGKILLedRepeatedly SIGKILLs the ingest binary four times
// at random points of a load, restarting it each time: whatever a killed
// process inserted but did not commit is redelivered, and ReplacingMergeTree
// folds it, so nothing is lost and nothing doubled.
func TestFaultIngestSIGKILLedRepeatedly(t *testing.T) {
	record := caseRow(t, "ingest SIGKILLed repeatedly during a load")
	e := newEnv(t)
	l := newLoad(t, e, writers, perWriter)
	l.run(pace)
	const kills = 4
	var uptimes []string
	ing := e.ingest(t)
	for range kills {
		up := time.Duration(1000+rand.IntN(3000)) * time.Millisecond
		time.Sleep(up)
		ing.kill(t)
		uptimes = append(uptimes, fmt.Sprintf("%.1fs", up.Seconds()))
		ing = e.ingest(t)
	}
	l.halt()
	l.drain(30 * time.Second)

	want := l.sent()
	e.waitStored(len(want), 120*time.Second)
	ing.term(t, 60*time.Second)
	a := e.account(want)
	if int64(a.Rows) < a.Stored {
		t.Errorf("%d rows for %d distinct events", a.Rows, a.Stored)
	}
	e.report(t, record, l, a,
		fmt.Sprintf("ingest SIGKILLed %d times after %v of work, restarted each time", kills, uptimes))
}
