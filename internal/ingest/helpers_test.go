package ingest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/agentaudit/agentaudit/internal/bench/eventgen"
	"github.com/agentaudit/agentaudit/internal/eventlog"
	"github.com/agentaudit/agentaudit/internal/eventlog/eventlogtest"
	"github.com/agentaudit/agentaudit/internal/events"
	"github.com/agentaudit/agentaudit/internal/store"
	"github.com/agentaudit/agentaudit/internal/testenv"
)

// subprocessEnv makes the test binary run ingest.Run with the JSON Config
// it holds instead of the tests: the fault tests kill and signal it.
const subprocessEnv = "AGENTAUDIT_INGEST_TEST_SUBPROCESS"

func TestMain(m *testing.M) {
	if js := os.Getenv(subprocessEnv); js != "" {
		var cfg Config
		if err := json.Unmarshal([]byte(js), &cfg); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(3)
		}
		cfg.Logger = slog.New(slog.NewTextHandler(os.Stderr, nil))
		ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
		defer stop()
		if err := Run(ctx, cfg); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

func suffix(t testing.TB) string {
	var b [4]byte
	rand.Read(b[:])
	return fmt.Sprintf("%d_%s", os.Getpid(), hex.EncodeToString(b[:]))
}

// env is one test's private topics, database and config.
type env struct {
	t       testing.TB
	cfg     Config
	admin   *store.Store
	kcl     *kgo.Client
	brokers []string
}

// newEnv creates unique topics (3 partitions, 2 MiB records allowed on
// the consumed topics) and a database created and dropped by the admin.
func newEnv(t testing.TB) *env {
	t.Helper()
	brokers := testenv.Kafka(t)
	addr := testenv.ClickHouse(t)
	all, _ := testenv.Env()
	ctx := context.Background()
	admin, err := store.Open(ctx, store.Config{Addr: addr, User: testenv.Get(t, "CLICKHOUSE_ADMIN_USER"), Password: all["CLICKHOUSE_ADMIN_PASSWORD"], Database: "default"})
	if err != nil {
		t.Fatalf("open as admin: %v", err)
	}
	sfx := suffix(t)
	db := "test_ingest_" + sfx
	if err := admin.Conn().Exec(ctx, "CREATE DATABASE "+db); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := admin.Conn().Exec(context.Background(), "DROP DATABASE IF EXISTS "+db); err != nil {
			t.Errorf("drop %s: %v", db, err)
		}
		admin.Close()
	})
	name := strings.ToLower(strings.NewReplacer("/", ".", "_", ".").Replace(t.Name())) + "." + sfx
	topics := eventlog.Topics{Events: "test.ingest.events." + name, Approvals: "test.ingest.approvals." + name, DLQ: "test.ingest.dlq." + name}
	kcl, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.ProducerBatchMaxBytes(4<<20))
	if err != nil {
		t.Fatal(err)
	}
	adm := kadm.NewClient(kcl)
	big := "2097152"
	cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if _, err := adm.CreateTopics(cctx, 3, 1, map[string]*string{"max.message.bytes": &big}, topics.Events, topics.Approvals); err != nil {
		t.Fatal(err)
	}
	if _, err := adm.CreateTopic(cctx, 3, 1, nil, topics.DLQ); err != nil {
		t.Fatal(err)
	}
	eventlogtest.WaitLeaders(t, cctx, adm, topics.Events, topics.Approvals, topics.DLQ)
	t.Cleanup(func() {
		dctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		adm.DeleteTopics(dctx, topics.Events, topics.Approvals, topics.DLQ)
		kcl.Close()
	})
	return &env{
		t: t, admin: admin, kcl: kcl, brokers: brokers,
		cfg: Config{
			Brokers: brokers, Group: "test-ingest-" + sfx, Topics: topics,
			ClickHouseAddr: addr, ClickHouseUser: testenv.Get(t, "CLICKHOUSE_USER"), ClickHousePassword: testenv.Get(t, "CLICKHOUSE_PASSWORD"),
			Database: db, Migrate: true,
			BatchRows: 1000, BatchWait: 200 * time.Millisecond, ChainGrace: 2 * time.Second,
			RetryMin: 50 * time.Millisecond, RetryMax: time.Second,
			MetricsAddr: "off",
			Logger:      testenv.Logger(t, slog.LevelInfo),
		},
	}
}

// run starts Run in-process; the returned stop cancels it and checks that
// it returned nil.
func (e *env) run(cfg Config) (stop func()) {
	e.t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- Run(ctx, cfg) }()
	stopped := false
	stop = func() {
		if stopped {
			return
		}
		stopped = true
		cancel()
		select {
		case err := <-done:
			if err != nil {
				e.t.Errorf("Run: %v", err)
			}
		case <-time.After(90 * time.Second):
			e.t.Errorf("Run did not return within 90s of cancel")
		}
	}
	e.t.Cleanup(stop)
	return stop
}

// sessions returns n sessions of every example event type, stamped on
// their chains, with their topics and keys.
func sessions(t testing.TB, topics eventlog.Topics, n int, tag string) []*kgo.Record {
	t.Helper()
	tmpl, err := eventgen.Examples()
	if err != nil {
		t.Fatal(err)
	}
	ids := testIDs(t)
	var out []*kgo.Record
	base := time.Now().UTC().Add(-time.Minute)
	for s := 0; s < n; s++ {
		chains := map[events.ChainKey]*events.Chain{}
		for _, env := range eventgen.ExampleSession(ids, tmpl, fmt.Sprintf("sess-%s-%04d", tag, s), base.Add(time.Duration(s)*time.Millisecond)) {
			ch := chains[env.Key()]
			if ch == nil {
				ch = events.NewChain(env.Key())
				chains[env.Key()] = ch
			}
			wire, err := ch.StampAppend(nil, env)
			if err != nil {
				t.Fatal(err)
			}
			topic, key := topics.TopicFor(env)
			out = append(out, &kgo.Record{Topic: topic, Key: key, Value: wire})
		}
	}
	return out
}

func (e *env) produce(recs ...*kgo.Record) {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if err := e.kcl.ProduceSync(ctx, recs...).FirstErr(); err != nil {
		e.t.Fatalf("produce: %v", err)
	}
}

func (e *env) uint64(q string) uint64 {
	e.t.Helper()
	var n uint64
	if err := e.admin.Conn().QueryRow(context.Background(), strings.ReplaceAll(q, "{db}", e.cfg.Database)).Scan(&n); err != nil {
		e.t.Fatalf("%s: %v", q, err)
	}
	return n
}

// waitRows waits until q (a count) returns want.
func (e *env) waitRows(q string, want uint64, timeout time.Duration) {
	e.t.Helper()
	deadline := time.Now().Add(timeout)
	var n uint64
	for time.Now().Before(deadline) {
		var err error
		err = e.admin.Conn().QueryRow(context.Background(), strings.ReplaceAll(q, "{db}", e.cfg.Database)).Scan(&n)
		if err == nil && n == want {
			return
		}
		time.Sleep(200 * time.Millisecond)
	}
	e.t.Fatalf("%s = %d after %s, want %d", q, n, timeout, want)
}

func get(t testing.TB, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
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

type kadmListedOffset = kadm.ListedOffset

func newAdm(e *env) *kadm.Client { return kadm.NewClient(e.kcl) }

func tryGet(url string) (int, string) {
	resp, err := http.Get(url)
	if err != nil {
		return 0, ""
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// testIDs is one id generator for the whole test binary: generators made
// in the same millisecond with one node id would issue the same ids.
var testIDs = func() func(testing.TB) *events.IDGen {
	var once sync.Once
	var g *events.IDGen
	var err error
	return func(t testing.TB) *events.IDGen {
		once.Do(func() { g, err = events.NewIDGen(77) })
		if err != nil {
			t.Fatal(err)
		}
		return g
	}
}()
