package ingest

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/http"
	"os"
	"os/exec"
	"reflect"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/agentaudit/agentaudit/internal/events"
	"github.com/agentaudit/agentaudit/internal/store"
	"github.com/agentaudit/agentaudit/schemas"
)

// BenchConfig configures Bench.
type BenchConfig struct {
	N          int // events to generate (default 1,000,000)
	Runs       int // runs of each side; medians are printed (default 1)
	Partitions int32
	Brokers    []string
	// ClickHouse: the writer runs ingest; the admin creates and drops the
	// bench databases.
	ClickHouseAddr, User, Password, AdminUser, AdminPassword string
	BatchRows, Inserts                                       int
	// Ingest is the ingest binary run as a subprocess (its peak RSS is
	// read from /proc); Kcat and ClickHouseClient are the peer's tools.
	Ingest, Kcat, ClickHouseClient string
	Keep                           bool // keep topics and databases
	Log                            io.Writer
}

// BenchResult is one run of both sides.
type BenchResult struct {
	IngestSeconds, PeerSeconds float64
	IngestPeakRSS              int64 // bytes, VmHWM of the ingest process
}

// Bench generates cfg.N events of every type, puts them on fresh topics,
// and measures, per run, (a) an ingest subprocess from its start until
// every row is visible in ClickHouse, and (b) the peer
// `kcat -C -e | clickhouse-client INSERT … FORMAT JSONEachRow` on the same
// events, pre-flattened into JSONEachRow rows of the same events table
// (the peer cannot validate or flatten; it gets each event's row with the
// columns ingest fills, zero columns omitted). It prints both rates, the
// ratio and ingest's peak RSS.
func Bench(ctx context.Context, cfg BenchConfig, out io.Writer) error {
	if cfg.N <= 0 {
		cfg.N = 1_000_000
	}
	if cfg.Runs <= 0 {
		cfg.Runs = 1
	}
	if cfg.Partitions <= 0 {
		cfg.Partitions = 3
	}
	if cfg.Log == nil {
		cfg.Log = io.Discard
	}
	logf := func(format string, args ...any) { fmt.Fprintf(cfg.Log, "bench: "+format+"\n", args...) }
	tag := strconv.FormatInt(time.Now().UnixNano(), 36)
	topics := events.Topics{Events: "bench.events." + tag, Approvals: "bench.approvals." + tag, DLQ: "bench.dlq." + tag}
	peerTopic := "bench.peer." + tag

	cl, err := kgo.NewClient(kgo.SeedBrokers(cfg.Brokers...), kgo.ProducerLinger(5*time.Millisecond),
		kgo.MaxBufferedRecords(50_000), kgo.ProducerBatchMaxBytes(1<<20), kgo.RecordPartitioner(kgo.StickyKeyPartitioner(nil)))
	if err != nil {
		return err
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	if err := events.EnsureTopics(ctx, cl, topics, cfg.Partitions, 1); err != nil {
		return err
	}
	if _, err := adm.CreateTopic(ctx, cfg.Partitions, 1, nil, peerTopic); err != nil {
		return fmt.Errorf("bench: create %s: %w", peerTopic, err)
	}
	if !cfg.Keep {
		defer func() {
			dctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			adm.DeleteTopics(dctx, topics.Events, topics.Approvals, topics.DLQ, peerTopic)
		}()
	}

	start := time.Now()
	gen, err := produceBench(ctx, cl, cfg.N, topics, peerTopic)
	if err != nil {
		return err
	}
	logf("generated and produced %d events (%d MB of events, %d MB of peer rows) in %s", cfg.N, gen.eventBytes>>20, gen.peerBytes>>20, time.Since(start).Round(time.Millisecond))

	admin, err := store.Open(ctx, store.Config{Addr: cfg.ClickHouseAddr, User: cfg.AdminUser, Password: cfg.AdminPassword, Database: "default"})
	if err != nil {
		return err
	}
	defer admin.Close()
	var results []BenchResult
	for run := 1; run <= cfg.Runs; run++ {
		db := fmt.Sprintf("bench_%s_%d", tag, run)
		peerDB := db + "_peer"
		for _, d := range []string{db, peerDB} {
			if err := admin.Conn().Exec(ctx, "CREATE DATABASE "+d); err != nil {
				return err
			}
			if !cfg.Keep {
				defer admin.Conn().Exec(context.WithoutCancel(ctx), "DROP DATABASE IF EXISTS "+d)
			}
			st, err := store.Open(ctx, store.Config{Addr: cfg.ClickHouseAddr, User: cfg.AdminUser, Password: cfg.AdminPassword, Database: d})
			if err != nil {
				return err
			}
			_, err = st.Migrate(ctx)
			st.Close()
			if err != nil {
				return err
			}
		}
		var r BenchResult
		if r.IngestSeconds, r.IngestPeakRSS, err = benchIngest(ctx, cfg, topics, db, "bench-"+tag+"-"+strconv.Itoa(run), admin, logf); err != nil {
			return err
		}
		if r.PeerSeconds, err = benchPeer(ctx, cfg, peerTopic, peerDB, admin); err != nil {
			return err
		}
		logf("run %d: ingest %.2fs (%.0f events/s, peak RSS %d MiB), peer %.2fs (%.0f events/s)", run,
			r.IngestSeconds, float64(cfg.N)/r.IngestSeconds, r.IngestPeakRSS>>20, r.PeerSeconds, float64(cfg.N)/r.PeerSeconds)
		results = append(results, r)
	}
	printBench(out, cfg, results)
	return nil
}

func printBench(out io.Writer, cfg BenchConfig, rs []BenchResult) {
	med := func(f func(BenchResult) float64) float64 {
		v := make([]float64, len(rs))
		for i, r := range rs {
			v[i] = f(r)
		}
		sort.Float64s(v)
		return v[len(v)/2]
	}
	ing := med(func(r BenchResult) float64 { return float64(cfg.N) / r.IngestSeconds })
	peer := med(func(r BenchResult) float64 { return float64(cfg.N) / r.PeerSeconds })
	rss := med(func(r BenchResult) float64 { return float64(r.IngestPeakRSS) })
	fmt.Fprintf(out, "events            %d (all %d types, %d partitions per topic)\n", cfg.N, len(events.EventTypes), cfg.Partitions)
	fmt.Fprintf(out, "runs              %d (medians)\n", len(rs))
	for i, r := range rs {
		fmt.Fprintf(out, "  run %d           ingest %8.0f events/s  peer %8.0f events/s  ratio %.2f  ingest peak RSS %d MiB\n",
			i+1, float64(cfg.N)/r.IngestSeconds, float64(cfg.N)/r.PeerSeconds, r.PeerSeconds/r.IngestSeconds, r.IngestPeakRSS>>20)
	}
	fmt.Fprintf(out, "ingest            %.0f events/s (validated, flattened, chain-checked; until every row is visible)\n", ing)
	fmt.Fprintf(out, "peer              %.0f events/s (kcat -C -e | clickhouse-client INSERT … FORMAT JSONEachRow, pre-flattened rows)\n", peer)
	fmt.Fprintf(out, "ratio             %.2fx (target >= 1.0)\n", ing/peer)
	fmt.Fprintf(out, "ingest peak RSS   %.0f MiB (target <= 256)\n", rss/(1<<20))
}

type genStats struct{ eventBytes, peerBytes int64 }

// produceBench generates sessions of the example events (every type)
// re-stamped on fresh chains, producing each event to its topic and its
// pre-flattened row to the peer topic.
func produceBench(ctx context.Context, cl *kgo.Client, n int, topics events.Topics, peerTopic string) (genStats, error) {
	tmpl, err := templates()
	if err != nil {
		return genStats{}, err
	}
	ids, err := events.NewIDGen(811)
	if err != nil {
		return genStats{}, err
	}
	var st genStats
	var firstErr atomic.Value
	promise := func(_ *kgo.Record, err error) {
		if err != nil {
			firstErr.CompareAndSwap(nil, err)
		}
	}
	base := time.Now().UTC().Add(-time.Hour)
	var line bytes.Buffer
	for s := 0; s*len(tmpl) < n; s++ {
		envs := genSession(ids, tmpl, fmt.Sprintf("sess-bench-%08d", s), base.Add(time.Duration(s)*time.Millisecond))
		envs = envs[:min(len(envs), n-s*len(tmpl))]
		chains := map[events.ChainKey]*events.Chain{}
		for _, env := range envs {
			ch := chains[env.Key()]
			if ch == nil {
				ch = events.NewChain(env.Key())
				chains[env.Key()] = ch
			}
			wire, err := ch.StampAppend(nil, env)
			if err != nil {
				return st, fmt.Errorf("bench: stamp %s: %w", env.EventType, err)
			}
			topic, key := topics.TopicFor(env)
			row, err := store.RowFromEvent(env, wire, store.Source{Topic: topic, Offset: int64(s)})
			if err != nil {
				return st, err
			}
			line.Reset()
			appendJSONRow(&line, &row)
			st.eventBytes += int64(len(wire))
			st.peerBytes += int64(line.Len())
			cl.Produce(ctx, &kgo.Record{Topic: topic, Key: key, Value: wire}, promise)
			cl.Produce(ctx, &kgo.Record{Topic: peerTopic, Key: key, Value: slices.Clone(line.Bytes())}, promise)
		}
		if e := firstErr.Load(); e != nil {
			return st, e.(error)
		}
	}
	if err := cl.Flush(ctx); err != nil {
		return st, err
	}
	if e := firstErr.Load(); e != nil {
		return st, e.(error)
	}
	return st, nil
}

// genSession copies the templates into a new session: fresh event ids
// (approval and parent references follow), times from base on. The
// events are not stamped; every emitter's events form one chain.
func genSession(ids *events.IDGen, tmpl []*events.Envelope, session string, base time.Time) []*events.Envelope {
	newIDs := map[string]string{}
	out := make([]*events.Envelope, len(tmpl))
	for i, t := range tmpl {
		env := *t
		env.EventID = ids.Next().String()
		newIDs[t.EventID] = env.EventID
		env.SessionID = session
		env.EventTime = base.Add(time.Duration(i) * 37 * time.Microsecond).Truncate(time.Microsecond)
		env.Seq, env.PrevHash, env.Hash = 0, "", ""
		if env.ApprovalID != "" {
			env.ApprovalID = newIDs[env.ApprovalID]
		}
		if env.ParentEventID != "" {
			env.ParentEventID = newIDs[env.ParentEventID]
		}
		out[i] = &env
	}
	return out
}

// templates returns the valid examples (every event type) in time order.
func templates() ([]*events.Envelope, error) {
	paths, err := fs.Glob(schemas.FS, "examples/valid/*.json")
	if err != nil {
		return nil, err
	}
	var out []*events.Envelope
	for _, p := range paths {
		b, err := fs.ReadFile(schemas.FS, p)
		if err != nil {
			return nil, err
		}
		env, err := events.Decode(b)
		if err != nil {
			return nil, fmt.Errorf("bench: %s: %w", p, err)
		}
		out = append(out, env)
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].EventTime.Before(out[j].EventTime) })
	return out, nil
}

// appendJSONRow writes r as one JSONEachRow line with the columns
// InsertEvents writes, leaving out zero values (the table's defaults).
func appendJSONRow(b *bytes.Buffer, r *store.EventRow) {
	cols := store.EventColumns()
	v := reflect.ValueOf(r).Elem()
	b.WriteByte('{')
	first := true
	put := func(col string, val any) {
		if !first {
			b.WriteByte(',')
		}
		first = false
		b.WriteByte('"')
		b.WriteString(col)
		b.WriteString(`":`)
		switch x := val.(type) {
		case string:
			writeJSONString(b, x)
		case time.Time:
			b.WriteString(x.UTC().Format(`"2006-01-02 15:04:05"`))
		case bool:
			b.WriteString("1")
		case []uint64:
			b.WriteByte('[')
			for i, id := range x {
				if i > 0 {
					b.WriteByte(',')
				}
				b.WriteString(strconv.FormatUint(id, 10))
			}
			b.WriteByte(']')
		default:
			fmt.Fprint(b, x)
		}
	}
	// EventRow's fields up to Raw are the columns in order.
	for i := 0; i < v.NumField(); i++ {
		name := v.Type().Field(i).Name
		if name == "Raw" {
			break
		}
		f := v.Field(i)
		if f.IsZero() || (f.Kind() == reflect.Slice && f.Len() == 0) {
			continue
		}
		put(cols[i], f.Interface())
	}
	put("raw", string(r.Raw))
	put("source_topic", r.Source.Topic)
	put("source_partition", r.Source.Partition)
	put("source_offset", r.Source.Offset)
	put("ingested_at", time.Now())
	b.WriteByte('}')
}

func writeJSONString(b *bytes.Buffer, s string) {
	enc := json.NewEncoder(b)
	enc.SetEscapeHTML(false)
	enc.Encode(s)
	b.Truncate(b.Len() - 1) // Encode's newline
}

// benchIngest runs the ingest binary until every event is a row, and
// returns the elapsed time and its peak RSS.
func benchIngest(ctx context.Context, cfg BenchConfig, topics events.Topics, db, group string, admin *store.Store, logf func(string, ...any)) (float64, int64, error) {
	port, err := freePort()
	if err != nil {
		return 0, 0, err
	}
	args := []string{"run", "-brokers", strings.Join(cfg.Brokers, ","), "-group", group,
		"-topic-events", topics.Events, "-topic-approvals", topics.Approvals, "-topic-dlq", topics.DLQ,
		"-clickhouse-addr", cfg.ClickHouseAddr, "-clickhouse-user", cfg.User, "-database", db,
		"-metrics-addr", "127.0.0.1:" + strconv.Itoa(port), "-log-level", "warn"}
	if cfg.BatchRows > 0 {
		args = append(args, "-batch-rows", strconv.Itoa(cfg.BatchRows))
	}
	if cfg.Inserts > 0 {
		args = append(args, "-inserts", strconv.Itoa(cfg.Inserts))
	}
	cmd := exec.CommandContext(ctx, cfg.Ingest, args...)
	cmd.Env = append(os.Environ(), "CLICKHOUSE_PASSWORD="+cfg.Password)
	cmd.Stderr = cfg.Log
	start := time.Now()
	if err := cmd.Start(); err != nil {
		return 0, 0, fmt.Errorf("bench: start ingest: %w", err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	var elapsed float64
	var rss int64
	for {
		n, err := count(ctx, admin, db)
		if err == nil && n >= uint64(cfg.N) {
			elapsed = time.Since(start).Seconds()
			rss = peakRSS(cmd.Process.Pid)
			break
		}
		select {
		case err := <-exited:
			return 0, 0, fmt.Errorf("bench: ingest exited early: %v", err)
		case <-ctx.Done():
			cmd.Process.Kill()
			return 0, 0, ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
	// Where the time went, from ingest's own metrics.
	if resp, err := http.Get("http://127.0.0.1:" + strconv.Itoa(port) + "/metrics"); err == nil {
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		val := func(name string) string {
			for _, l := range strings.Split(string(body), "\n") {
				if v, ok := strings.CutPrefix(l, name+" "); ok {
					return v
				}
			}
			return "?"
		}
		logf("ingest metrics: events inserts %s taking %ss in all, rows %s, chain lookups %s, retries %s, GC CPU %ss",
			val(`agentaudit_ingest_insert_duration_seconds_count{table="events"}`), val(`agentaudit_ingest_insert_duration_seconds_sum{table="events"}`),
			val("agentaudit_ingest_rows_inserted_total"), val(`agentaudit_ingest_retries_total{op="chain_lookup"}`),
			val(`agentaudit_ingest_retries_total{op="insert_events"}`), val("go_gc_duration_seconds_sum"))
	}
	cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-exited:
		if err != nil {
			return 0, 0, fmt.Errorf("bench: ingest did not exit cleanly on SIGTERM: %w", err)
		}
	case <-time.After(60 * time.Second):
		cmd.Process.Kill()
		return 0, 0, errors.New("bench: ingest did not exit within 60s of SIGTERM")
	}
	return elapsed, rss, nil
}

// benchPeer runs kcat | clickhouse-client over the peer topic.
func benchPeer(ctx context.Context, cfg BenchConfig, topic, db string, admin *store.Store) (float64, error) {
	host, port, _ := net.SplitHostPort(cfg.ClickHouseAddr)
	kcat := exec.CommandContext(ctx, cfg.Kcat, "-C", "-b", strings.Join(cfg.Brokers, ","), "-t", topic, "-o", "beginning", "-e", "-q")
	chc := exec.CommandContext(ctx, cfg.ClickHouseClient, "--host", host, "--port", port, "--user", cfg.User, "--password", cfg.Password,
		// Blocks of 100k rows: by default clickhouse-client sends all input
		// as one block, which the server refuses (connection reset) at 1M
		// rows of this table.
		"--max_insert_block_size", "100000",
		"--query", "INSERT INTO "+db+".events FORMAT JSONEachRow")
	pipe, err := kcat.StdoutPipe()
	if err != nil {
		return 0, err
	}
	chc.Stdin = pipe
	var stderr bytes.Buffer
	kcat.Stderr, chc.Stderr = &stderr, &stderr
	start := time.Now()
	if err := chc.Start(); err != nil {
		return 0, fmt.Errorf("bench: %s: %w", cfg.ClickHouseClient, err)
	}
	if err := kcat.Start(); err != nil {
		return 0, fmt.Errorf("bench: %s: %w", cfg.Kcat, err)
	}
	kerr := kcat.Wait()
	cerr := chc.Wait()
	elapsed := time.Since(start).Seconds()
	if kerr != nil || cerr != nil {
		return 0, fmt.Errorf("bench: peer failed: kcat %v, clickhouse-client %v: %s", kerr, cerr, stderr.String())
	}
	n, err := count(ctx, admin, db)
	if err != nil {
		return 0, err
	}
	if n != uint64(cfg.N) {
		return 0, fmt.Errorf("bench: peer loaded %d rows, want %d", n, cfg.N)
	}
	return elapsed, nil
}

func count(ctx context.Context, st *store.Store, db string) (uint64, error) {
	var n uint64
	err := st.Conn().QueryRow(ctx, "SELECT count() FROM "+db+".events").Scan(&n)
	return n, err
}

// peakRSS reads VmHWM (peak resident set) of pid from /proc, in bytes.
func peakRSS(pid int) int64 {
	f, err := os.Open("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		return 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "VmHWM:"); ok {
			kb, _ := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			return kb << 10
		}
	}
	return 0
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}
