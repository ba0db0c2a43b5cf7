package query

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/agentaudit/agentaudit/internal/eventlog"
	"github.com/agentaudit/agentaudit/internal/events"
	"github.com/agentaudit/agentaudit/internal/ingest"
	"github.com/agentaudit/agentaudit/internal/store"
	"github.com/agentaudit/agentaudit/internal/testenv"
)

func randHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// testDB creates a fresh, migrated audit database (dropped when the test
// ends) and returns the writer store for it.
func testDB(t testing.TB) *store.Store {
	t.Helper()
	return newTestDB(t, true)
}

// dropAtExit lists databases shared between tests, dropped by TestMain.
var dropAtExit []string

// testDBNoCleanup is testDB for a database several tests share.
func testDBNoCleanup(t testing.TB) *store.Store {
	t.Helper()
	return newTestDB(t, false)
}

func newTestDB(t testing.TB, cleanup bool) *store.Store {
	t.Helper()
	addr := testenv.ClickHouse(t)
	env, _ := testenv.Env()
	ctx := context.Background()
	admin, err := store.Open(ctx, store.Config{Addr: addr, User: testenv.Get(t, "CLICKHOUSE_ADMIN_USER"),
		Password: env["CLICKHOUSE_ADMIN_PASSWORD"], Database: "default"})
	if err != nil {
		t.Fatalf("open as admin: %v", err)
	}
	db := fmt.Sprintf("test_query_%d_%s", os.Getpid(), randHex(4))
	if err := admin.Conn().Exec(ctx, "CREATE DATABASE "+db); err != nil {
		t.Fatal(err)
	}
	if cleanup {
		t.Cleanup(func() {
			if err := admin.Conn().Exec(context.Background(), "DROP DATABASE IF EXISTS "+db); err != nil {
				t.Errorf("drop %s: %v", db, err)
			}
			admin.Close()
		})
	} else {
		dropAtExit = append(dropAtExit, db)
		admin.Close()
	}
	w, err := store.Open(ctx, store.Config{Addr: addr, User: testenv.Get(t, "CLICKHOUSE_USER"),
		Password: testenv.Get(t, "CLICKHOUSE_PASSWORD"), Database: db, Logger: testenv.Logger(t, slog.LevelInfo)})
	if err != nil {
		t.Fatal(err)
	}
	if cleanup {
		t.Cleanup(func() { w.Close() })
	}
	if _, err := w.Migrate(ctx); err != nil {
		t.Fatalf("migrate: %v", err)
	}
	return w
}

// readerConfig is the query Config for db as the read-only user.
func readerConfig(t testing.TB, db string) Config {
	return Config{Addr: testenv.ClickHouse(t), User: testenv.Get(t, "CLICKHOUSE_READONLY_USER"),
		Password: testenv.Get(t, "CLICKHOUSE_READONLY_PASSWORD"), Database: db,
		Timeout: 60 * time.Second, Logger: testenv.Logger(t, slog.LevelInfo)}
}

func openReader(t testing.TB, db string) *DB {
	t.Helper()
	q, err := Open(context.Background(), readerConfig(t, db))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { q.Close() })
	return q
}

// pipeline sends events through the real Kafka with the real producer
// (one per emitter, each stamping its own chains) and loads what it reads
// back from Kafka into ClickHouse, the way the ingester does: decode and
// validate the record value, flatten it with store.RowFromEvent keeping the
// exact bytes as raw, and insert.
type pipeline struct {
	t         testing.TB
	brokers   []string
	topics    eventlog.Topics
	producers map[string]*eventlog.Producer
	ids       *events.IDGen
	sent      int
}

func newPipeline(t testing.TB) *pipeline {
	t.Helper()
	pfx := "test.query." + randHex(4)
	ids, err := events.NewIDGen(7)
	if err != nil {
		t.Fatal(err)
	}
	p := &pipeline{t: t, brokers: testenv.Kafka(t), producers: map[string]*eventlog.Producer{}, ids: ids,
		topics: eventlog.Topics{Events: pfx + ".events", Approvals: pfx + ".approvals", DLQ: pfx + ".dlq"}}
	ensureTopics(t, p.brokers, p.topics)
	t.Cleanup(func() {
		for _, pr := range p.producers {
			pr.Close(context.Background())
		}
	})
	return p
}

// producer returns the producer of emitter runner, started on first use.
func (p *pipeline) producer(runner string) *eventlog.Producer {
	p.t.Helper()
	pr := p.producers[runner]
	if pr == nil {
		var err error
		pr, err = eventlog.NewProducer(context.Background(), p.brokers, runner, eventlog.WithTopics(p.topics),
			eventlog.WithEnsureTopics(1, 1), eventlog.WithAckTimeout(10*time.Second))
		if err != nil {
			p.t.Fatalf("producer %s: %v", runner, err)
		}
		p.producers[runner] = pr
	}
	return pr
}

// resume makes runner continue chain k, the way a runner that finds a
// session whose runner died does: it reads the session back from Kafka
// and resumes the chain from its last event there.
func (p *pipeline) resume(runner string, k events.ChainKey) {
	p.t.Helper()
	pr := p.producer(runner)
	evs, err := pr.ReadSession(context.Background(), k.SessionID)
	if err != nil {
		p.t.Fatalf("read session %s back: %v", k.SessionID, err)
	}
	var tip *events.Envelope
	for _, e := range evs {
		if e.Key() == k {
			tip = e
		}
	}
	if tip == nil {
		p.t.Fatalf("chain %s not found in Kafka", k)
	}
	pr.Resume(k, tip.Seq, tip.Hash)
}

// emit stamps and sends one event on the chain of (session, runner).
func (p *pipeline) emit(runner string, pl events.Payload, opts ...events.Option) *events.Envelope {
	p.t.Helper()
	ctx := context.Background()
	pr := p.producer(runner)
	env, err := events.New(pl, append([]events.Option{events.WithIDs(p.ids)}, opts...)...)
	if err != nil {
		p.t.Fatal(err)
	}
	if err := pr.Emit(ctx, env); err != nil {
		p.t.Fatalf("emit %s: %v", env.EventType, err)
	}
	p.sent++
	return env
}

// load moves every event the producers sent from Kafka into s with the
// real ingester (internal/ingest), and waits until all are stored.
// QUERY_FIXTURE_LOADER=direct uses loadDirect instead, for when the
// ingester is being changed under our feet.
func (p *pipeline) load(s *store.Store) {
	p.t.Helper()
	if os.Getenv("QUERY_FIXTURE_LOADER") == "direct" {
		p.loadDirect(s)
		return
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	cfg := ingest.Config{
		Brokers: p.brokers, Group: "test-query-" + randHex(4), Topics: p.topics,
		ClickHouseAddr: testenv.ClickHouse(p.t), ClickHouseUser: testenv.Get(p.t, "CLICKHOUSE_USER"),
		ClickHousePassword: testenv.Get(p.t, "CLICKHOUSE_PASSWORD"), Database: s.Database(),
		BatchWait: 100 * time.Millisecond, ChainGrace: time.Second, MetricsAddr: "off", Logger: testenv.Logger(p.t, slog.LevelInfo),
	}
	go func() { done <- ingest.Run(ctx, cfg) }()
	defer func() {
		cancel()
		if err := <-done; err != nil && !errors.Is(err, context.Canceled) {
			p.t.Errorf("ingest: %v", err)
		}
	}()
	deadline := time.Now().Add(60 * time.Second)
	for {
		var n uint64
		if err := s.Conn().QueryRow(ctx, "SELECT count() FROM "+s.Database()+".events").Scan(&n); err != nil {
			p.t.Fatal(err)
		}
		if n >= uint64(p.sent) {
			return
		}
		select {
		case err := <-done:
			p.t.Fatalf("ingest stopped after %d of %d events: %v", n, p.sent, err)
		case <-time.After(200 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			p.t.Fatalf("ingest stored %d of %d events in 60s", n, p.sent)
		}
	}
}

// loadDirect reads every record the producers sent back from Kafka and
// inserts them into s the way the ingester does.
func (p *pipeline) loadDirect(s *store.Store) {
	p.t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(p.brokers...), kgo.ConsumeTopics(p.topics.Events, p.topics.Approvals),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		p.t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var rows []store.EventRow
	for len(rows) < p.sent {
		fs := cl.PollFetches(ctx)
		if err := ctx.Err(); err != nil {
			p.t.Fatalf("read back %d of %d events from Kafka: %v", len(rows), p.sent, err)
		}
		fs.EachError(func(topic string, part int32, err error) { p.t.Fatalf("fetch %s/%d: %v", topic, part, err) })
		fs.EachRecord(func(r *kgo.Record) {
			env, err := events.Decode(r.Value)
			if err != nil {
				p.t.Fatalf("decode %s@%d: %v", r.Topic, r.Offset, err)
			}
			row, err := store.RowFromEvent(env, r.Value, store.Source{Topic: r.Topic, Partition: r.Partition, Offset: r.Offset})
			if err != nil {
				p.t.Fatal(err)
			}
			rows = append(rows, row)
		})
	}
	if err := s.InsertEvents(context.Background(), rows); err != nil {
		p.t.Fatal(err)
	}
}

func TestMain(m *testing.M) {
	code := m.Run()
	if len(dropAtExit) > 0 {
		env, _ := testenv.Env()
		ctx := context.Background()
		if admin, err := store.Open(ctx, store.Config{Addr: env["CLICKHOUSE_ADDR"], User: env["CLICKHOUSE_ADMIN_USER"],
			Password: env["CLICKHOUSE_ADMIN_PASSWORD"], Database: "default"}); err == nil {
			for _, db := range dropAtExit {
				admin.Conn().Exec(ctx, "DROP DATABASE IF EXISTS "+db)
			}
			admin.Close()
		}
	}
	os.Exit(code)
}

// ensureTopics creates the topics and waits until every partition has a
// leader: a producer that starts earlier may see UNKNOWN_TOPIC_OR_PARTITION.
func ensureTopics(t testing.TB, brokers []string, topics eventlog.Topics) {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := eventlog.EnsureTopics(ctx, cl, topics, 1, 1); err != nil {
		t.Fatal(err)
	}
	adm := kadm.NewClient(cl)
	for {
		md, err := adm.Metadata(ctx, topics.Events, topics.Approvals, topics.DLQ)
		ready := err == nil
		if ready {
			for _, td := range md.Topics {
				if td.Err != nil || len(td.Partitions) == 0 {
					ready = false
				}
				for _, pd := range td.Partitions {
					if pd.Err != nil || pd.Leader < 0 {
						ready = false
					}
				}
			}
		}
		if ready {
			return
		}
		if ctx.Err() != nil {
			t.Fatalf("topics %v not ready: %v", topics, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
