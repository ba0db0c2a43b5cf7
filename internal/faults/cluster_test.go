//go:build cluster

package faults

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/agentaudit/agentaudit/internal/eventlog"
	"github.com/agentaudit/agentaudit/internal/eventlog/eventlogtest"
	"github.com/agentaudit/agentaudit/internal/events"
	"github.com/agentaudit/agentaudit/internal/query"
	"github.com/agentaudit/agentaudit/internal/store"
	"github.com/agentaudit/agentaudit/internal/testenv"
	"github.com/agentaudit/agentaudit/internal/testenv/faultreport"
)

// The cluster fault cases (make faults-cluster) run on the environment of
// testenv/up --cluster: three Kafka nodes with topics of 3 replicas and
// min.insync.replicas=2, ClickHouse as 2 shards x 2 replicas behind
// Distributed tables, ZooKeeper. Each case SIGKILLs members of it under a
// load of runner-like writers (load_test.go) and the real ingest binary
// (-clickhouse-cluster, inserting through the Distributed tables), restarts
// them, and then accounts for every event Kafka acknowledged: stored once
// under FINAL across the shards, none dead-lettered, every replica of a
// shard holding the same rows after SYSTEM SYNC REPLICA, and query verify
// finding every chain intact.
//
// The writers stand in for runners: each is an eventlog.Producer with
// acks=all and the runner's default ack timeout, and a call whose audit
// event Kafka did not take within it is what the runner denies as
// audit_unavailable. "No call denied" is counted from those refusals.
const (
	clusterPerWriter = 1500
	// runnerAckTimeout is the runner's default AUDIT_ACK_TIMEOUT.
	runnerAckTimeout = 3 * time.Second
	// ingestServer is the ClickHouse server (shard 2, first replica) the
	// ingesters and the accounting talk to; the cases kill others.
	ingestServer = 2
	// brokerFailoverAck is the writers' ack timeout when a broker dies:
	// well above Kafka's 9 s broker session timeout, the metadata refresh
	// and, on a loaded machine, a controller election (16 s seen at 15).
	brokerFailoverAck = 30 * time.Second
	// loadBeforeKill is how long the load runs before the kill.
	loadBeforeKill = 4 * time.Second
)

type clusterEnv struct {
	*env
	c      testenv.ClusterEnv
	killed map[string]bool
}

// newClusterEnv creates the case's topics (replication factor 3) and a
// database migrated ON CLUSTER, both removed at the end; a member the case
// killed and did not restart is restarted before that.
func newClusterEnv(t *testing.T) *clusterEnv {
	t.Helper()
	c := testenv.Cluster(t)
	sfx := suffix()
	name := strings.ToLower(strings.NewReplacer("/", ".", "_", ".", " ", ".").Replace(t.Name())) + "." + sfx
	e := &env{
		t: t, brokers: c.Kafka,
		topics: eventlog.Topics{Events: "test.faults.events." + name, Approvals: "test.faults.approvals." + name, DLQ: "test.faults.dlq." + name},
		chAddr: c.ClickHouse[ingestServer],
		db:     "test_faults_cl_" + strings.ReplaceAll(sfx, ".", "_"),
		group:  "test-faults-cluster-" + sfx,
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	admin, err := store.Open(ctx, store.Config{Addr: e.chAddr, User: "default", Database: e.db, Cluster: c.Name})
	if err != nil {
		t.Fatal(err)
	}
	e.admin = admin
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		if err := admin.Conn().Exec(ctx, "DROP DATABASE IF EXISTS "+e.db+" ON CLUSTER "+c.Name); err != nil {
			t.Errorf("drop %s: %v", e.db, err)
		}
		admin.Close()
	})
	if _, err := admin.Migrate(ctx); err != nil {
		t.Fatalf("migrate %s on the cluster: %v", e.db, err)
	}

	cl, err := kgo.NewClient(kgo.SeedBrokers(c.Kafka...))
	if err != nil {
		t.Fatal(err)
	}
	adm := kadm.NewClient(cl)
	big := "2097152"
	// Replication factor -1: the brokers' default, 3.
	if _, err := adm.CreateTopics(ctx, 6, -1, map[string]*string{"max.message.bytes": &big}, e.topics.Events, e.topics.Approvals); err != nil {
		t.Fatal(err)
	}
	if _, err := adm.CreateTopic(ctx, 3, -1, nil, e.topics.DLQ); err != nil {
		t.Fatal(err)
	}
	eventlogtest.WaitLeaders(t, ctx, adm, e.topics.Events, e.topics.Approvals, e.topics.DLQ)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		adm.DeleteTopics(ctx, e.topics.Events, e.topics.Approvals, e.topics.DLQ)
		cl.Close()
	})
	ce := &clusterEnv{env: e, c: c, killed: map[string]bool{}}
	// Registered last, so it runs first: the drop ON CLUSTER needs every
	// server up.
	t.Cleanup(func() {
		for m, down := range ce.killed {
			if down {
				testenv.ClusterStart(t, m, restartWithin)
			}
		}
	})
	return ce
}

func (ce *clusterEnv) kill(member string) {
	ce.t.Helper()
	ce.killed[member] = true
	testenv.ClusterKill(ce.t, member)
}

func (ce *clusterEnv) restart(member string) {
	ce.t.Helper()
	testenv.ClusterStart(ce.t, member, restartWithin)
	ce.killed[member] = false
}

// ingest starts the real ingest binary against the cluster, talking to
// ClickHouse server server (an index into the cluster's servers).
func (ce *clusterEnv) ingest(t testing.TB, server int, extra ...string) *proc {
	t.Helper()
	e := ce.env
	args := []string{"run",
		"-brokers", strings.Join(e.brokers, ","), "-group", e.group,
		"-topic-events", e.topics.Events, "-topic-approvals", e.topics.Approvals, "-topic-dlq", e.topics.DLQ,
		"-clickhouse-addr", ce.c.ClickHouse[server], "-clickhouse-user", "default", "-clickhouse-password", "",
		"-clickhouse-cluster", ce.c.Name, "-database", e.db,
		"-batch-rows", "500", "-batch-wait", "200ms", "-retry-min", "50ms", "-retry-max", "1s",
		"-chain-grace", "20s", "-metrics-addr", "off", "-log-level", "warn"}
	args = append(args, extra...)
	return start(t, "ingest", binary(t, "ingest"), args, nil)
}

// syncReplicas waits until every replica holds what was written to its
// shard (SYSTEM SYNC REPLICA on each server, for each replicated table)
// and fails unless the two replicas of each shard hold the same rows. It
// returns the events rows per replica, shard by shard.
func (ce *clusterEnv) syncReplicas() string {
	t := ce.t
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	var counts []uint64
	for _, addr := range ce.c.ClickHouse {
		s, err := store.Open(ctx, store.Config{Addr: addr, User: "default", Database: ce.db})
		if err != nil {
			t.Fatalf("%s: %v", addr, err)
		}
		var tables []string
		rows, err := s.Conn().Query(ctx, "SELECT name FROM system.tables WHERE database = ? AND engine LIKE 'Replicated%'", ce.db)
		if err != nil {
			t.Fatalf("%s: %v", addr, err)
		}
		for rows.Next() {
			var n string
			rows.Scan(&n)
			tables = append(tables, n)
		}
		rows.Close()
		// A server restarted within ZooKeeper's session timeout finds its
		// old session's is_active node and keeps its tables read-only, not
		// replicating, until that session expires ("appears to be already
		// active"); SYSTEM SYNC REPLICA then returns at once. Wait for
		// replication to run first.
		for deadline := time.Now().Add(90 * time.Second); ; time.Sleep(time.Second) {
			var ro uint64
			err := s.Conn().QueryRow(ctx, "SELECT toUInt64(countIf(is_readonly OR is_session_expired)) FROM system.replicas WHERE database = ?", ce.db).Scan(&ro)
			if err == nil && ro == 0 {
				break
			}
			if time.Now().After(deadline) {
				t.Errorf("%s: %d replicated tables still read-only 90s on (%v)", addr, ro, err)
				break
			}
		}
		for _, tbl := range tables {
			if err := s.Conn().Exec(ctx, "SYSTEM SYNC REPLICA "+ce.db+"."+tbl); err != nil {
				t.Fatalf("%s: SYSTEM SYNC REPLICA %s: %v", addr, tbl, err)
			}
		}
		var n uint64
		if err := s.Conn().QueryRow(ctx, "SELECT count() FROM "+ce.db+".events_local").Scan(&n); err != nil {
			t.Fatalf("%s: %v", addr, err)
		}
		counts = append(counts, n)
		s.Close()
	}
	var parts []string
	for sh := range ce.c.Shards {
		rs := counts[sh*ce.c.Replicas : (sh+1)*ce.c.Replicas]
		for _, n := range rs[1:] {
			if n != rs[0] {
				t.Errorf("shard %d: replicas hold %v events rows after SYSTEM SYNC REPLICA, want equal", sh+1, rs)
			}
		}
		parts = append(parts, fmt.Sprintf("shard %d %v", sh+1, rs))
	}
	return "replica rows " + strings.Join(parts, ", ")
}

// verify runs query verify over the case's events, asked of a server the
// ingesters did not use, and fails on any finding or a count other than
// want.
func (ce *clusterEnv) verify(want int64) string {
	t := ce.t
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	// Cluster set: verify reads each shard's local table from its first
	// replica that answers, as query verify --clickhouse-cluster does.
	q, err := query.Open(ctx, query.Config{Addr: ce.c.ClickHouse[len(ce.c.ClickHouse)-1], User: "default", Database: ce.db,
		Cluster: ce.c.Name, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	defer q.Close()
	rep, err := q.Verify(ctx, query.VerifyScope{Period: query.Period{From: time.Now().Add(-time.Hour), To: time.Now().Add(time.Hour)}})
	if err != nil {
		t.Fatalf("query verify on the cluster: %v", err)
	}
	if int64(rep.Events) != want || len(rep.Findings) != 0 {
		t.Errorf("query verify: %d events (want %d), %d findings: %+v", rep.Events, want, len(rep.Findings), rep.Findings)
	}
	return fmt.Sprintf("verify %d events, %d chains, %d findings", rep.Events, rep.Chains, len(rep.Findings))
}

// waitISR waits until every partition of the case's topics has all three
// replicas in sync again, and returns how long that took.
func (ce *clusterEnv) waitISR(timeout time.Duration) time.Duration {
	t := ce.t
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(ce.brokers...))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	started := time.Now()
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		td, err := adm.ListTopics(ctx, ce.topics.Events, ce.topics.Approvals, ce.topics.DLQ)
		cancel()
		short := -1
		if err == nil {
			short = 0
			for _, d := range td {
				for _, p := range d.Partitions {
					if len(p.ISR) < 3 {
						short++
					}
				}
			}
		}
		if short == 0 {
			return time.Since(started)
		}
		if time.Since(started) > timeout {
			t.Errorf("%d partitions still short of 3 in-sync replicas %s after the restart (last error %v)", short, timeout, err)
			return time.Since(started)
		}
		time.Sleep(500 * time.Millisecond)
	}
}

// leaderOf returns the Kafka member leading partition 0 of the events topic.
func (ce *clusterEnv) leaderOf() string {
	t := ce.t
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(ce.brokers...))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	td, err := kadm.NewClient(cl).ListTopics(ctx, ce.topics.Events)
	if err != nil {
		t.Fatal(err)
	}
	return fmt.Sprintf("kafka%d", td[ce.topics.Events].Partitions[0].Leader)
}

// clusterFault is one case: members are SIGKILLed after the load has run
// a while, left down for downFor, restarted in order, and the load goes
// on; then every acknowledged event is accounted for. In every case Kafka
// keeps taking the writers' events, so any denied call fails it.
type clusterFault struct {
	name    string
	members func(ce *clusterEnv) []string
	downFor time.Duration
	// ack is the writers' ack timeout; zero is the runner's default.
	ack time.Duration
	// during runs while the members are down; its result goes into the
	// detail.
	during func(ce *clusterEnv, before uint64) string
}

func runClusterFault(t *testing.T, f clusterFault) {
	record := caseRow(t, f.name)
	ce := newClusterEnv(t)
	ing := ce.ingest(t, ingestServer)
	ack := f.ack
	if ack == 0 {
		ack = runnerAckTimeout
	}
	l := newLoadAck(t, ce.env, writers, clusterPerWriter, ack)
	l.run(pace)
	time.Sleep(loadBeforeKill)
	before, _ := ce.count("SELECT count() FROM {db}.events")

	members := f.members(ce)
	for _, m := range members {
		ce.kill(m)
	}
	downAt := time.Now()
	var during string
	if f.during != nil {
		during = f.during(ce, before)
	}
	if rest := f.downFor - time.Since(downAt); rest > 0 {
		time.Sleep(rest)
	}
	if ing.exited() {
		t.Fatalf("ingest exited while %v were down: %v", members, ing.wait(t, 0))
	}
	for _, m := range members {
		ce.restart(m)
	}
	down := time.Since(downAt)
	restartedAt := time.Now()
	l.more(clusterPerWriter / 4)
	time.Sleep(5 * time.Second)
	l.halt()
	l.drain(60 * time.Second)

	want := l.sent()
	ce.waitStored(len(want), 2*time.Minute)
	ing.term(t, 60*time.Second)
	var isr time.Duration
	if strings.HasPrefix(members[0], "kafka") {
		isr = ce.waitISR(time.Minute)
	}
	replicas := ce.syncReplicas()
	a := ce.account(want)
	verified := ce.verify(a.Stored)
	if a.ChainBreak != 0 {
		ce.explainBreaks()
	}
	var maxWait time.Duration
	at := func(ns int64) float64 { return time.Unix(0, ns).Sub(downAt).Seconds() }
	for _, w := range l.writers {
		if n, r := w.deny.Load(), w.refused.Load(); n != 0 || r != 0 {
			t.Errorf("writer %s: %d calls denied audit_unavailable, %d sessions refused (refusals %+.1fs to %+.1fs from the kill; restarts done %+.1fs); want none",
				w.id, n, r, at(w.firstDeny.Load()), at(w.lastDeny.Load()), restartedAt.Sub(downAt).Seconds())
		}
		maxWait = max(maxWait, time.Duration(w.maxWait.Load()))
	}
	detail := fmt.Sprintf("%s SIGKILLed %.0fs into the load (%d rows stored), down %.0fs incl. restart", strings.Join(members, "+"), loadBeforeKill.Seconds(), before, down.Seconds())
	detail += fmt.Sprintf("; longest Emit %.1fs (ack timeout %.0fs)", maxWait.Seconds(), ack.Seconds())
	if during != "" {
		detail += "; " + during
	}
	if isr > 0 {
		detail += fmt.Sprintf("; all partitions back to 3 in-sync replicas %.1fs after the restart", isr.Seconds())
	}
	ce.report(t, record, l, a, detail+"; "+replicas+"; "+verified)
}

// storedWhileDown samples the stored events while members are down and
// says how many were stored meanwhile: ingest going on, or backing off.
func storedWhileDown(wait time.Duration) func(ce *clusterEnv, before uint64) string {
	return func(ce *clusterEnv, before uint64) string {
		time.Sleep(wait)
		n, err := ce.count("SELECT uniqExact(event_id) FROM {db}.events")
		if err != nil {
			return fmt.Sprintf("reads fail while down (%v)", firstLine(err))
		}
		return fmt.Sprintf("%d distinct events stored %.0fs into the outage", n, wait.Seconds())
	}
}

func firstLine(err error) string {
	s, _, _ := strings.Cut(err.Error(), "\n")
	if len(s) > 80 {
		s = s[:80] + "…"
	}
	return s
}

// TestFaultClusterBrokerKilled SIGKILLs the Kafka node leading partition 0
// of the events topic (one of three; it may also be the active controller)
// under load and restarts it 10 s later. With replication factor 3 and
// min.insync.replicas=2 the writers' acks=all Emits keep succeeding: no
// call is denied, no session refused; every event is stored once.
//
// The writers wait up to brokerFailoverAck, not the runner's default 3 s:
// the partitions the dead broker led have no leader until the controllers
// fence it, after broker.session.timeout.ms (Kafka's default, 9 s), so
// Emits stall once, for 0.6-16 s measured here (the table's "longest
// Emit"), and at 3 s the runner denies the calls of that stall as
// audit_unavailable. A runner against a multi-broker cluster needs
// AUDIT_ACK_TIMEOUT above that (or brokers with a shorter session timeout).
func TestFaultClusterBrokerKilled(t *testing.T) {
	runClusterFault(t, clusterFault{
		name:    "cluster: 1 of 3 Kafka brokers SIGKILLed under load",
		members: func(ce *clusterEnv) []string { return []string{ce.leaderOf()} },
		downFor: 10 * time.Second,
		ack:     brokerFailoverAck,
	})
}

// TestFaultClusterReplicaKilled SIGKILLs ch1, the replica of shard 1 that
// takes its Distributed inserts (load_balancing=in_order), for 15 s:
// inserts go to ch2, ingest goes on, and once ch1 is back it catches up
// (both replicas of each shard hold the same rows).
func TestFaultClusterReplicaKilled(t *testing.T) {
	runClusterFault(t, clusterFault{
		name:    "cluster: one ClickHouse replica SIGKILLed under load",
		members: func(*clusterEnv) []string { return []string{"ch1"} },
		downFor: 15 * time.Second,
		during:  storedWhileDown(10 * time.Second),
	})
}

// TestFaultClusterShardKilled SIGKILLs both replicas of shard 1 for 15 s:
// inserts of its sessions fail, ingest backs off without committing, and
// after the restart it catches up; nothing is lost or doubled.
func TestFaultClusterShardKilled(t *testing.T) {
	runClusterFault(t, clusterFault{
		name:    "cluster: a whole ClickHouse shard SIGKILLed under load",
		members: func(*clusterEnv) []string { return []string{"ch1", "ch2"} },
		downFor: 15 * time.Second,
		during:  storedWhileDown(10 * time.Second),
	})
}

// TestFaultClusterZooKeeperRestarted SIGKILLs ZooKeeper for 10 s under
// load and restarts it: the replicated tables refuse inserts while it is
// gone, ingest retries, and once ClickHouse reconnects everything is
// stored once on both replicas.
func TestFaultClusterZooKeeperRestarted(t *testing.T) {
	runClusterFault(t, clusterFault{
		name:    "cluster: ZooKeeper SIGKILLed and restarted under load",
		members: func(*clusterEnv) []string { return []string{"zookeeper"} },
		downFor: 10 * time.Second,
		during:  storedWhileDown(8 * time.Second),
	})
}

// TestFaultClusterRebalanceRestart runs the ingest group and the detect
// group on the cluster while a second ingester and a second detector join
// them, and SIGKILLs the first ingester and the first detector while their
// groups rebalance (the group coordinator reports PreparingRebalance or
// CompletingRebalance), restarting both at once. Beside the load, sessions
// of egress denials cross the restart (three denials before it, two after)
// so detect's window rule is due once per session. Every event, the alerts
// included, is stored once; every due alert is raised exactly once.
func TestFaultClusterRebalanceRestart(t *testing.T) {
	record := caseRow(t, "cluster: an ingester and a detector SIGKILLed mid-rebalance")
	ce := newClusterEnv(t)
	root, err := testenv.Root()
	if err != nil {
		t.Fatal(err)
	}
	state, repart := ce.topics.Events+".state", ce.topics.Events+".repartition"
	t.Cleanup(func() { deleteTopics(ce.brokers, state, repart) })
	dgroup := "test-faults-cluster-detect-" + suffix()
	detect := func(n int) *proc {
		args := []string{"run", "-brokers", strings.Join(ce.brokers, ","), "-group", dgroup,
			"-rules", root + "/rules", "-id", fmt.Sprintf("detect-cluster-%d-%s", n, suffix()),
			// Node ids 500.. are this case's detectors: ids derived from
			// -id may collide between instances.
			"-node-id", strconv.Itoa(500 + n),
			"-events-topic", ce.topics.Events, "-approvals-topic", ce.topics.Approvals,
			"-state-topic", state, "-repartition-topic", repart, "-create-topics=true", "-start-at", "earliest",
			"-metrics", freeAddr(t), "-checkpoint-every", "1s", "-clickhouse-addr", "", "-log-level", "warn"}
		return start(t, "detect", binary(t, "detect"), args, nil)
	}

	ingA, detA := ce.ingest(t, ingestServer), detect(1)
	l := newLoadAck(t, ce.env, writers, clusterPerWriter, runnerAckTimeout)
	l.run(pace)

	p, err := eventlog.NewProducer(context.Background(), ce.brokers, "fault-egress-"+suffix(), eventlog.WithTopics(ce.topics))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close(context.Background()) })
	ids, err := events.NewIDGen(400)
	if err != nil {
		t.Fatal(err)
	}
	const denialSessions = 12
	var extra []string // ids of the denial sessions' events
	denials := map[string][]string{}
	emit := func(sid string, pl events.Payload) string {
		env, err := events.New(pl, events.WithIDs(ids), events.WithTenant("acme"), events.WithSession(sid, ""),
			events.WithActor(events.ActorAgent, "fault-agent"), events.WithAgent("fault-agent", "1"))
		if err != nil {
			t.Fatal(err)
		}
		if err := p.Emit(context.Background(), env); err != nil {
			t.Fatalf("emit %s: %v", env.EventType, err)
		}
		extra = append(extra, env.EventID)
		return env.EventID
	}
	deny := func(sid string) {
		denials[sid] = append(denials[sid], emit(sid, events.NetEgress{Phase: "decision", Host: "exfil.example", Port: 443,
			Decision: events.DecisionDeny, ReasonCode: events.ReasonDefaultDeny}))
	}
	var sids []string
	for i := range denialSessions {
		sid := fmt.Sprintf("sess-egress-%d-%s", i, suffix())
		sids = append(sids, sid)
		emit(sid, events.SessionStarted{Workspace: "/srv/work/" + sid, SandboxProfileSHA256: hexOf(sid),
			Image: "localhost/agentaudit-sandbox:fault", Mode: "exec"})
		for range 3 {
			deny(sid)
		}
	}
	time.Sleep(loadBeforeKill)

	// A second member joins each group; the first dies while its group
	// rebalances and is restarted at once (a second rebalance).
	ingB := ce.ingest(t, ingestServer+1)
	ingState := ce.awaitRebalance(ce.group, 15*time.Second)
	ingA.kill(t)
	ingA = ce.ingest(t, ingestServer)
	detB := detect(2)
	detState := ce.awaitRebalance(dgroup, 15*time.Second)
	detA.kill(t)
	detA = detect(3)

	for _, sid := range sids {
		for range 2 {
			deny(sid)
		}
		emit(sid, events.SessionEnded{Reason: events.EndCompleted, DurationMS: 1})
	}
	l.more(clusterPerWriter / 4)
	time.Sleep(5 * time.Second)
	l.halt()
	l.drain(60 * time.Second)

	alerts := readAlertEvents(t, ce.brokers, ce.topics.Events, denialSessions, 5*time.Second, 2*time.Minute)
	want := append(append(l.sent(), extra...), alertIDs(alerts)...)
	ce.waitStored(len(want), 2*time.Minute)
	for _, pr := range []*proc{ingA, ingB, detA, detB} {
		pr.term(t, 60*time.Second)
	}
	replicas := ce.syncReplicas()
	a := ce.account(want)
	verified := ce.verify(a.Stored)

	// Every due alert once; any alert raised twice (same rule, session and
	// matched events) is a duplicate.
	var raised, lost, dup int64
	seen := map[string]int{}
	for _, al := range alerts {
		key := al.p.RuleID + "/" + al.session + "/" + strings.Join(al.p.MatchedEventIDs, ",")
		seen[key]++
		if seen[key] > 1 {
			dup++
			t.Errorf("alert %s raised %d times", key, seen[key])
		}
	}
	for _, sid := range sids {
		key := windowRule + "/" + sid + "/" + strings.Join(denials[sid], ",")
		if seen[key] == 0 {
			lost++
			t.Errorf("%s: no %s alert over its five denials", sid, windowRule)
		} else {
			raised++
		}
	}
	if a.Unexpected != 0 || a.ChainBreak != 0 {
		t.Errorf("%d stored events never produced, %d chain breaks", a.Unexpected, a.ChainBreak)
	}
	if acked := l.acked(); acked != int64(len(l.sent())) {
		t.Errorf("Kafka acknowledged %d of the %d events the writers took", acked, len(l.sent()))
	}
	dlq := ce.mustCount("SELECT count() FROM {db}.dlq_events")
	if dlq != 0 {
		t.Errorf("%d valid events dead-lettered", dlq)
	}
	for _, w := range l.writers {
		if n, r := w.deny.Load(), w.refused.Load(); n != 0 || r != 0 {
			t.Errorf("writer %s: %d calls denied audit_unavailable, %d sessions refused; want none", w.id, n, r)
		}
	}
	record(faultreport.Case{
		Produced: int64(len(want)), Stored: a.Stored, DLQ: int64(dlq),
		Lost: a.Lost + lost, Duplicated: a.Duplicated + dup,
		// produced counts every event in Kafka: the load's, the denial
		// sessions' and detect's alerts; lost and duplicated count alerts too.
		Detail: fmt.Sprintf("ingester 1 of 2 SIGKILLed with its group %s, detector 1 of 2 with its group %s, both restarted; "+
			"%d alerts raised, %d of %d due %s alerts once; produced = load %d + egress sessions %d + alerts %d; %s; %s; %s; %d rows before merges, %d chain breaks",
			ingState, detState, len(alerts), raised, denialSessions, windowRule, len(l.sent()), len(extra), len(alerts),
			l.stats(), replicas, verified, a.Rows, a.ChainBreak),
	})
}

// awaitRebalance waits until group is rebalancing and returns its state,
// or the last state seen when it does not within timeout.
func (ce *clusterEnv) awaitRebalance(group string, timeout time.Duration) string {
	cl, err := kgo.NewClient(kgo.SeedBrokers(ce.brokers...))
	if err != nil {
		ce.t.Fatal(err)
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	last := "unknown"
	for deadline := time.Now().Add(timeout); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		gs, err := adm.DescribeGroups(ctx, group)
		cancel()
		if err != nil {
			continue
		}
		if g, ok := gs[group]; ok && g.Err == nil {
			last = g.State
			if g.State == "PreparingRebalance" || g.State == "CompletingRebalance" {
				return g.State
			}
		}
	}
	ce.t.Logf("group %s not seen rebalancing within %s (last state %s)", group, timeout, last)
	return "not seen rebalancing (" + last + ")"
}

type alertEvent struct {
	id      string
	session string
	p       *events.AlertRaised
}

func alertIDs(as []alertEvent) []string {
	var out []string
	for _, a := range as {
		out = append(out, a.id)
	}
	return out
}

// readAlertEvents reads alert.raised events from topic until want of them
// are windowRule's and no alert came for settle (so duplicates, and the
// alerts other rules raise on the load, show), or timeout.
func readAlertEvents(t testing.TB, brokers []string, topic string, want int, settle, timeout time.Duration) []alertEvent {
	t.Helper()
	payload := func(env *events.Envelope) *events.AlertRaised {
		p, err := env.DecodePayload()
		if err != nil {
			t.Fatal(err)
		}
		return p.(*events.AlertRaised)
	}
	isWindow := func(env *events.Envelope) bool { return payload(env).RuleID == windowRule }
	var out []alertEvent
	for _, env := range readCounting(t, brokers, topic, events.TypeAlertRaised, isWindow, want, settle, timeout) {
		out = append(out, alertEvent{env.EventID, env.SessionID, payload(env)})
	}
	return out
}

// explainBreaks logs, for each recorded chain break, how many of the
// events it calls missing each server holds now: a break over events every
// replica holds was recorded falsely.
func (ce *clusterEnv) explainBreaks() {
	t := ce.t
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	rows, err := ce.admin.Conn().Query(ctx, "SELECT session_id, runner_id, kind, expected_seq, got_seq, toString(detected_at) FROM "+ce.db+".chain_breaks")
	if err != nil {
		t.Logf("chain breaks: %v", err)
		return
	}
	type brk struct {
		session, runner, kind, at string
		want, got                 uint64
	}
	var bs []brk
	for rows.Next() {
		var b brk
		if err := rows.Scan(&b.session, &b.runner, &b.kind, &b.want, &b.got, &b.at); err == nil {
			bs = append(bs, b)
		}
	}
	rows.Close()
	for _, b := range bs {
		var held []string
		for i, addr := range ce.c.ClickHouse {
			s, err := store.Open(ctx, store.Config{Addr: addr, User: "default", Database: ce.db})
			if err != nil {
				continue
			}
			var n uint64
			s.Conn().QueryRow(ctx, "SELECT count() FROM "+ce.db+".events_local WHERE session_id = ? AND runner_id = ? AND seq >= ? AND seq < ?",
				b.session, b.runner, b.want, b.got).Scan(&n)
			held = append(held, fmt.Sprintf("ch%d %d", i+1, n))
			s.Close()
		}
		t.Logf("chain break %s at %s in %s: seq %d..%d called missing; now held: %s", b.kind, b.at, b.session, b.want, b.got-1, strings.Join(held, ", "))
	}
}
