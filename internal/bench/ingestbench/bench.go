// Package ingestbench is `ingest bench`: an ingest process loading a
// million events of every type from Kafka into ClickHouse, against the
// peer kcat | clickhouse-client on the same events, in the same run.
package ingestbench

import (
	"bufio"
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"reflect"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/agentaudit/agentaudit/internal/bench/eventgen"
	"github.com/agentaudit/agentaudit/internal/benchreport"
	"github.com/agentaudit/agentaudit/internal/eventlog"
	"github.com/agentaudit/agentaudit/internal/events"
	"github.com/agentaudit/agentaudit/internal/store"
)

// Config configures Run.
type Config struct {
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
	Keep                           bool   // keep topics and databases
	JSON                           string // also write the medians here (benchreport.Figures)
	// ServerPID, when known, is the ClickHouse server's process: its CPU
	// time during each side is reported beside the side's own.
	ServerPID int
	Log       io.Writer
}

// Result is one run of both sides.
type Result struct {
	Ingest, Peer  SideResult
	IngestPeakRSS int64 // bytes, VmHWM of the ingest process
}

// SideResult is one side's figures in one run.
type SideResult struct {
	Seconds float64 // start until every row is visible
	// FirstRow is the start until the first row is visible: process
	// start, group join, first fetch and the first insert's round trip.
	FirstRow float64
	// CPU is the side's own CPU seconds (ingest; kcat and
	// clickhouse-client for the peer), ServerCPU the server's in the same
	// span (0 when its pid is unknown).
	CPU, ServerCPU float64
}

// steady is the rate after the first row was visible, or "-" when the
// rows became visible all at once at the end (the peer's single INSERT).
func (s SideResult) steady(n int) string {
	if s.Seconds-s.FirstRow < s.Seconds/10 {
		return "-"
	}
	return fmt.Sprintf("%.0f/s", float64(n)/(s.Seconds-s.FirstRow))
}

// Run generates cfg.N events of every type, puts them on fresh topics,
// and measures, per run, (a) an ingest subprocess from its start until
// every row is visible in ClickHouse, and (b) the peer
// `kcat -C -e | clickhouse-client INSERT … FORMAT JSONEachRow` on the same
// events, pre-flattened into JSONEachRow rows of the same events table
// (the peer cannot validate or flatten; it gets each event's row with the
// columns ingest fills, zero columns omitted). It prints both rates, the
// ratio and ingest's peak RSS.
func Run(ctx context.Context, cfg Config, out io.Writer) error {
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
	topics := eventlog.Topics{Events: "bench.events." + tag, Approvals: "bench.approvals." + tag, DLQ: "bench.dlq." + tag}
	peerTopic := "bench.peer." + tag

	cl, err := kgo.NewClient(kgo.SeedBrokers(cfg.Brokers...), kgo.ProducerLinger(5*time.Millisecond),
		kgo.MaxBufferedRecords(50_000), kgo.ProducerBatchMaxBytes(1<<20), kgo.RecordPartitioner(kgo.StickyKeyPartitioner(nil)))
	if err != nil {
		return err
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	if err := eventlog.EnsureTopics(ctx, cl, topics, cfg.Partitions, 1); err != nil {
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
	var results []Result
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
		var r Result
		ingestSide := func() error {
			var err error
			if r.Ingest, r.IngestPeakRSS, err = benchIngest(ctx, cfg, topics, db, "bench-"+tag+"-"+strconv.Itoa(run), admin, logf); err != nil {
				return err
			}
			logf("run %d: ingest %.2fs (%.0f events/s, first row %.2fs, CPU %.1fs, server CPU %.1fs, peak RSS %d MiB)", run,
				r.Ingest.Seconds, float64(cfg.N)/r.Ingest.Seconds, r.Ingest.FirstRow, r.Ingest.CPU, r.Ingest.ServerCPU, r.IngestPeakRSS>>20)
			return nil
		}
		peerSide := func() error {
			var err error
			if r.Peer, err = benchPeer(ctx, cfg, peerTopic, peerDB, admin); err != nil {
				return err
			}
			logf("run %d: peer %.2fs (%.0f events/s)", run, r.Peer.Seconds, float64(cfg.N)/r.Peer.Seconds)
			return nil
		}
		// Sides alternate which goes first, and each starts on a quiet
		// server: a side's parts go on merging after its rows are
		// visible, and that work must not land on the other side.
		sides := []func() error{ingestSide, peerSide}
		if run%2 == 0 {
			sides[0], sides[1] = sides[1], sides[0]
		}
		for _, side := range sides {
			quiesce(ctx, admin, logf)
			if err := side(); err != nil {
				return err
			}
		}
		results = append(results, r)
	}
	return printBench(out, cfg, results)
}

func printBench(out io.Writer, cfg Config, rs []Result) error {
	med := func(f func(Result) float64) float64 {
		v := make([]float64, len(rs))
		for i, r := range rs {
			v[i] = f(r)
		}
		sort.Float64s(v)
		return v[len(v)/2]
	}
	n := float64(cfg.N)
	ing := med(func(r Result) float64 { return n / r.Ingest.Seconds })
	peer := med(func(r Result) float64 { return n / r.Peer.Seconds })
	ratio := med(func(r Result) float64 { return r.Peer.Seconds / r.Ingest.Seconds })
	rss := med(func(r Result) float64 { return float64(r.IngestPeakRSS) })
	fmt.Fprintf(out, "events            %d (all %d types, %d partitions per topic), the same for both sides\n", cfg.N, len(events.EventTypes), cfg.Partitions)
	fmt.Fprintf(out, "runs              %d (medians)\n", len(rs))
	side := func(s SideResult) string {
		f := fmt.Sprintf("%8.0f events/s  first row %5.2fs  steady %9s  CPU %5.1fs", n/s.Seconds, s.FirstRow, s.steady(cfg.N), s.CPU)
		if cfg.ServerPID > 0 {
			f += fmt.Sprintf(" + server %5.1fs", s.ServerCPU)
		}
		return f
	}
	for i, r := range rs {
		fmt.Fprintf(out, "  run %d  ingest %s  peak RSS %d MiB\n", i+1, side(r.Ingest), r.IngestPeakRSS>>20)
		fmt.Fprintf(out, "         peer   %s  ratio %.2f\n", side(r.Peer), r.Peer.Seconds/r.Ingest.Seconds)
	}
	fmt.Fprintf(out, "ingest            %.0f events/s (validated, flattened, chain-checked; until every row is visible)\n", ing)
	fmt.Fprintf(out, "peer              %.0f events/s (kcat -C -e | clickhouse-client INSERT … FORMAT JSONEachRow, pre-flattened rows)\n", peer)
	fmt.Fprintf(out, "CPU per event     ingest %.1f µs, peer %.1f µs (own processes; medians)\n",
		med(func(r Result) float64 { return r.Ingest.CPU })/n*1e6, med(func(r Result) float64 { return r.Peer.CPU })/n*1e6)
	if cfg.ServerPID > 0 {
		fmt.Fprintf(out, "server CPU/event  ingest %.1f µs, peer %.1f µs\n",
			med(func(r Result) float64 { return r.Ingest.ServerCPU })/n*1e6, med(func(r Result) float64 { return r.Peer.ServerCPU })/n*1e6)
	}
	fmt.Fprintf(out, "ratio             %.2fx (median of per-run ratios; target >= 1.0)\n", ratio)
	fmt.Fprintf(out, "ingest peak RSS   %.0f MiB (target <= 256)\n", rss/(1<<20))
	if cfg.JSON == "" {
		return nil
	}
	return benchreport.WriteFigures(cfg.JSON, benchreport.Figures{
		"events": n, "runs": float64(len(rs)),
		"ingest_events_per_s": ing, "peer_events_per_s": peer, "ratio": ratio,
		"ingest_peak_rss_mib":     rss / (1 << 20),
		"ingest_cpu_us_per_event": med(func(r Result) float64 { return r.Ingest.CPU }) / n * 1e6,
		"peer_cpu_us_per_event":   med(func(r Result) float64 { return r.Peer.CPU }) / n * 1e6,
	})
}

type genStats struct{ eventBytes, peerBytes int64 }

// produceBench generates sessions of the example events (every type)
// re-stamped on fresh chains, producing each event to its topic and its
// pre-flattened row to the peer topic.
func produceBench(ctx context.Context, cl *kgo.Client, n int, topics eventlog.Topics, peerTopic string) (genStats, error) {
	tmpl, err := eventgen.Examples()
	if err != nil {
		return genStats{}, err
	}
	ids, err := events.NewIDGen(811)
	if err != nil {
		return genStats{}, err
	}
	var st genStats
	// The first produce error; errors of different types, so not an
	// atomic.Value (its CompareAndSwap panics on a second concrete type).
	var errMu sync.Mutex
	var produceErr error
	promise := func(_ *kgo.Record, err error) {
		if err != nil {
			errMu.Lock()
			produceErr = cmp.Or(produceErr, err)
			errMu.Unlock()
		}
	}
	firstErr := func() error {
		errMu.Lock()
		defer errMu.Unlock()
		return produceErr
	}
	base := time.Now().UTC().Add(-time.Hour)
	var line bytes.Buffer
	for s := 0; s*len(tmpl) < n; s++ {
		envs := eventgen.ExampleSession(ids, tmpl, fmt.Sprintf("sess-bench-%08d", s), base.Add(time.Duration(s)*time.Millisecond))
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
		if err := firstErr(); err != nil {
			return st, err
		}
	}
	if err := cl.Flush(ctx); err != nil {
		return st, err
	}
	if err := firstErr(); err != nil {
		return st, err
	}
	return st, nil
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
// returns its figures and its peak RSS.
func benchIngest(ctx context.Context, cfg Config, topics eventlog.Topics, db, group string, admin *store.Store, logf func(string, ...any)) (SideResult, int64, error) {
	var res SideResult
	port, err := freePort()
	if err != nil {
		return res, 0, err
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
	server0 := cpuSeconds(cfg.ServerPID)
	start := time.Now()
	if err := cmd.Start(); err != nil {
		return res, 0, fmt.Errorf("bench: start ingest: %w", err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	var rss int64
	for {
		n, err := count(ctx, admin, db)
		if err == nil && n > 0 && res.FirstRow == 0 {
			res.FirstRow = time.Since(start).Seconds()
		}
		if err == nil && n >= uint64(cfg.N) {
			res.Seconds = time.Since(start).Seconds()
			rss = peakRSS(cmd.Process.Pid)
			res.CPU = cpuSeconds(cmd.Process.Pid)
			if cfg.ServerPID > 0 {
				res.ServerCPU = cpuSeconds(cfg.ServerPID) - server0
			}
			break
		}
		select {
		case err := <-exited:
			return res, 0, fmt.Errorf("bench: ingest exited early: %v", err)
		case <-ctx.Done():
			cmd.Process.Kill()
			return res, 0, ctx.Err()
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
		logf("ingest metrics: events inserts %s taking %ss in all (open to accepted), rows %s, chain lookups %s, chain lookup retries %s, insert retries %s, GC pauses %ss, parked %s",
			val(`agentaudit_ingest_insert_duration_seconds_count{table="events"}`), val(`agentaudit_ingest_insert_duration_seconds_sum{table="events"}`),
			val("agentaudit_ingest_rows_inserted_total"), val("agentaudit_ingest_chain_lookups_total"), val(`agentaudit_ingest_retries_total{op="chain_lookup"}`),
			val(`agentaudit_ingest_retries_total{op="insert_events"}`), val("go_gc_duration_seconds_sum"), val("agentaudit_ingest_chain_parked_events"))
	}
	cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-exited:
		if err != nil {
			return res, 0, fmt.Errorf("bench: ingest did not exit cleanly on SIGTERM: %w", err)
		}
	case <-time.After(60 * time.Second):
		cmd.Process.Kill()
		return res, 0, errors.New("bench: ingest did not exit within 60s of SIGTERM")
	}
	return res, rss, nil
}

// benchPeer runs kcat | clickhouse-client over the peer topic, polling
// the row count like benchIngest does for the time to the first row.
func benchPeer(ctx context.Context, cfg Config, topic, db string, admin *store.Store) (SideResult, error) {
	var res SideResult
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
		return res, err
	}
	chc.Stdin = pipe
	var stderr bytes.Buffer
	kcat.Stderr, chc.Stderr = &stderr, &stderr
	server0 := cpuSeconds(cfg.ServerPID)
	start := time.Now()
	if err := chc.Start(); err != nil {
		return res, fmt.Errorf("bench: %s: %w", cfg.ClickHouseClient, err)
	}
	if err := kcat.Start(); err != nil {
		return res, fmt.Errorf("bench: %s: %w", cfg.Kcat, err)
	}
	done := make(chan struct{})
	first := make(chan float64, 1)
	go func() {
		defer close(first)
		for {
			if n, err := count(ctx, admin, db); err == nil && n > 0 {
				first <- time.Since(start).Seconds()
				return
			}
			select {
			case <-done:
				return
			case <-time.After(50 * time.Millisecond):
			}
		}
	}()
	kerr := kcat.Wait()
	cerr := chc.Wait()
	res.Seconds = time.Since(start).Seconds()
	close(done)
	if cfg.ServerPID > 0 {
		res.ServerCPU = cpuSeconds(cfg.ServerPID) - server0
	}
	if kerr != nil || cerr != nil {
		return res, fmt.Errorf("bench: peer failed: kcat %v, clickhouse-client %v: %s", kerr, cerr, stderr.String())
	}
	for _, p := range []*os.ProcessState{kcat.ProcessState, chc.ProcessState} {
		res.CPU += (p.UserTime() + p.SystemTime()).Seconds()
	}
	res.FirstRow = res.Seconds
	if f, ok := <-first; ok {
		res.FirstRow = f
	}
	n, err := count(ctx, admin, db)
	if err != nil {
		return res, err
	}
	if n != uint64(cfg.N) {
		return res, fmt.Errorf("bench: peer loaded %d rows, want %d", n, cfg.N)
	}
	return res, nil
}

// count is the rows visible in db.events, from the parts' metadata: on
// 18.16 count() reads a column of every row, and polled every 50ms while
// ingest's rows arrive (the peer's appear at the end) it cost the server
// CPU that was charged to ingest.
// quiesce waits, up to a minute, until the disks hold what the broker
// and server wrote and the server runs no merges, so that neither side of
// the bench is charged for the other's (or the generator's) trailing work.
func quiesce(ctx context.Context, st *store.Store, logf func(string, ...any)) {
	start := time.Now()
	syscall.Sync()
	for time.Since(start) < time.Minute {
		var n uint64
		if err := st.Conn().QueryRow(ctx, "SELECT count() FROM system.merges").Scan(&n); err != nil || n == 0 {
			break
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(200 * time.Millisecond):
		}
	}
	logf("quiet after %s", time.Since(start).Round(10*time.Millisecond))
}

func count(ctx context.Context, st *store.Store, db string) (uint64, error) {
	var n uint64
	err := st.Conn().QueryRow(ctx, "SELECT toUInt64(sum(rows)) FROM system.parts WHERE database = ? AND table = 'events' AND active", db).Scan(&n)
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

// cpuSeconds reads the user and system CPU time of pid from /proc; 0
// when pid is 0 or unreadable.
func cpuSeconds(pid int) float64 {
	if pid <= 0 {
		return 0
	}
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0
	}
	// Fields after the parenthesised command name; utime and stime are
	// the 14th and 15th of the whole line, in clock ticks (100 a second
	// on Linux).
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 13 {
		return 0
	}
	u, _ := strconv.ParseFloat(f[11], 64)
	s, _ := strconv.ParseFloat(f[12], 64)
	return (u + s) / 100
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}
