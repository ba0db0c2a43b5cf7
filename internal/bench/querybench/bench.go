// Package querybench is `query bench`: every compliance report and the
// chain verifier timed over a generated month of events, as the
// read-only account.
package querybench

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"runtime"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/agentaudit/agentaudit/internal/bench/eventgen"
	"github.com/agentaudit/agentaudit/internal/events"
	"github.com/agentaudit/agentaudit/internal/query"
	"github.com/agentaudit/agentaudit/internal/store"
)

// Config configures `query bench`: generate events into a bench
// database with the writer account, then time every report and verify as
// the read-only account.
type Config struct {
	Reader query.Config // Database is the bench database
	// WriterUser and WriterPassword create and fill the bench database.
	WriterUser, WriterPassword string
	Events                     int // default 10,000,000
	Days                       int // spread over this many days; default 30
	Runs                       int // timings per report; the median is shown; default 5
	// Fresh drops the bench database first; otherwise an existing one with
	// at least Events events is reused.
	Fresh bool
	// VerifyOnly times verify alone over an existing bench database: no
	// migration, no generation, no reports.
	VerifyOnly bool
	// Cluster names the ClickHouse cluster (remote_servers) the server at
	// Reader.Addr belongs to, as CLICKHOUSE_CLUSTER does for ingest: the
	// bench database is installed ON CLUSTER, generated through the
	// Distributed tables (sharded by session), merged on the local tables,
	// and the reports and verify read the Distributed tables. Empty for one
	// server.
	Cluster string
	Logger  *slog.Logger
}

// Summary is what Run measured: the slowest report's median over
// the last day and over the whole period, reports that failed, and the
// median time to verify the last day.
type Summary struct {
	// Topology names what was measured: one server, or the cluster with
	// its shards and replicas.
	Topology                             string
	Shards, Replicas                     int
	Events, Days                         int
	SlowestDay, SlowestPeriod, VerifyDay time.Duration
	Failed                               int
	// Verify over the last day (median) and over the whole period (once):
	// events verified and the peak Go heap while verifying.
	VerifyDayEvents, VerifyPeriodEvents     int
	VerifyPeriod                            time.Duration
	VerifyDayPeakHeap, VerifyPeriodPeakHeap uint64
	// Reports holds each report's median over the whole period and over
	// the last day, by report name (absent when it failed).
	Reports map[string]ReportTimes
}

// ReportTimes are one report's medians.
type ReportTimes struct{ Day, Period time.Duration }

// heapPeak samples the Go heap in use until stopped.
type heapPeak struct {
	done chan struct{}
	peak chan uint64
}

func startHeapPeak() *heapPeak {
	h := &heapPeak{done: make(chan struct{}), peak: make(chan uint64)}
	go func() {
		var m runtime.MemStats
		var peak uint64
		t := time.NewTicker(20 * time.Millisecond)
		defer t.Stop()
		for {
			runtime.ReadMemStats(&m)
			peak = max(peak, m.HeapInuse)
			select {
			case <-h.done:
				h.peak <- peak
				return
			case <-t.C:
			}
		}
	}()
	return h
}

func (h *heapPeak) stop() uint64 { close(h.done); return <-h.peak }

// Run generates the events (if needed), then prints per report the
// median of Runs timings over the whole period and over its last day, and
// the time to verify that day. The summary is returned with the error
// when only some report runs failed.
func Run(ctx context.Context, cfg Config, out io.Writer) (*Summary, error) {
	if cfg.Events <= 0 {
		cfg.Events = 10_000_000
	}
	if cfg.Days <= 0 {
		cfg.Days = 30
	}
	if cfg.Runs <= 0 {
		cfg.Runs = 5
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	// Every row is read back, as a person exporting a report would.
	cfg.Reader.MaxRows = 1 << 30
	if err := cfg.Reader.Validate(); err != nil {
		return nil, err
	}
	w, err := store.Open(ctx, store.Config{Addr: cfg.Reader.Addr, User: cfg.WriterUser, Password: cfg.WriterPassword,
		Database: cfg.Reader.Database, Cluster: cfg.Cluster, Logger: cfg.Logger, ReadTimeout: readTimeout})
	if err != nil {
		return nil, err
	}
	defer w.Close()
	db := cfg.Reader.Database
	topo, err := readTopology(ctx, w, cfg.Reader.Addr, cfg.Cluster)
	if err != nil {
		return nil, err
	}
	fmt.Fprintf(out, "topology: %s\n", topo)
	if cfg.Fresh && !cfg.VerifyOnly {
		if err := w.Conn().Exec(ctx, topo.drop(db)); err != nil {
			return nil, fmt.Errorf("bench: drop %s: %w", db, err)
		}
	}
	if !cfg.VerifyOnly {
		if _, err := w.Migrate(ctx); err != nil {
			return nil, err
		}
	}
	var have uint64
	if err := w.Conn().QueryRow(ctx, "SELECT count() FROM "+db+".events").Scan(&have); err != nil {
		return nil, err
	}
	// generate writes Events/30 sessions of up to 30 events each, about
	// 95% of Events; a database that holds at least 90% was generated for
	// this size and is reused.
	if have < uint64(cfg.Events)*9/10 {
		if cfg.VerifyOnly {
			return nil, fmt.Errorf("bench: %s holds %d events, too few for %d: run without --verify-only to generate them", db, have, cfg.Events)
		}
		if have > 0 {
			return nil, fmt.Errorf("bench: %s holds %d events, too few for %d: rerun with --fresh", db, have, cfg.Events)
		}
		start := time.Now()
		n, bytes, err := generate(ctx, w, cfg)
		if err != nil {
			return nil, err
		}
		el := time.Since(start)
		fmt.Fprintf(out, "generated %d events (%d MB of raw, %.0f B/event) into %s in %s (%.0f events/s)\n",
			n, bytes>>20, float64(bytes)/float64(n), db, el.Round(time.Second), float64(n)/el.Seconds())
		have = uint64(n)
	}
	if !cfg.VerifyOnly {
		// Merge as production would have by the time anyone reports; a
		// reused database left part-merged by an earlier run is merged now.
		start := time.Now()
		if parts, err := topo.merge(ctx, w, db, cfg); err != nil {
			cfg.Logger.Warn("optimize", "err", err)
		} else {
			fmt.Fprintf(out, "merged in %s: %s\n", time.Since(start).Round(time.Second), parts)
		}
		// Merging collapses duplicates (a retried insert's) into one row.
		if err := w.Conn().QueryRow(ctx, "SELECT count() FROM "+db+".events").Scan(&have); err != nil {
			return nil, err
		}
	}
	q, err := query.Open(ctx, cfg.Reader)
	if err != nil {
		return nil, err
	}
	defer q.Close()
	all, err := query.Reports()
	if err != nil {
		return nil, err
	}
	fullP := query.Period{From: eventgen.PeriodEnd.AddDate(0, 0, -cfg.Days), To: eventgen.PeriodEnd}
	dayP := query.Period{From: eventgen.PeriodEnd.AddDate(0, 0, -1), To: eventgen.PeriodEnd}
	fmt.Fprintf(out, "%d events over %d days (%s to %s), median of %d runs, read-only account %s\n\n",
		have, cfg.Days, fullP.From.Format(time.DateOnly), fullP.To.Format(time.DateOnly), cfg.Runs, cfg.Reader.User)
	// Rows are printed as they are measured: a month of reports at 10M
	// events takes minutes, and a failing report must not hide the others.
	line := func(name, period, rows, med, lo, hi, ok string) {
		fmt.Fprintf(out, "%-20s %8s %8s %10s %10s %10s  %s\n", name, period, rows, med, lo, hi, ok)
	}
	line("report", "period", "rows", "median", "min", "max", "≤ 2 s")
	sum := &Summary{Topology: topo.String(), Shards: topo.shards(), Replicas: topo.replicas(),
		Events: int(have), Days: cfg.Days, Reports: map[string]ReportTimes{}}
	failed := 0
	for _, r := range all {
		if cfg.VerifyOnly {
			break
		}
		for _, p := range []struct {
			name string
			p    query.Period
		}{{"1 day", dayP}, {fmt.Sprintf("%d days", cfg.Days), fullP}} {
			var times []time.Duration
			rows := 0
			var rerr error
			for i := 0; i < cfg.Runs && rerr == nil; i++ {
				start := time.Now()
				res, err := q.RunReport(ctx, r, p.p, nil)
				if err != nil {
					rerr = err
					break
				}
				times = append(times, time.Since(start))
				rows = len(res.Rows)
			}
			if rerr != nil {
				failed++
				line(r.Name, p.name, "-", "-", "-", "-", "FAILED: "+rerr.Error())
				continue
			}
			med := sortedMedian(times)
			rt := sum.Reports[r.Name]
			if p.p == dayP {
				sum.SlowestDay = max(sum.SlowestDay, med)
				rt.Day = med
			} else {
				sum.SlowestPeriod = max(sum.SlowestPeriod, med)
				rt.Period = med
			}
			sum.Reports[r.Name] = rt
			line(r.Name, p.name, strconv.Itoa(rows), fmtMS(med), fmtMS(slices.Min(times)), fmtMS(slices.Max(times)), okMark(sortedMedian(times)))
		}
	}
	var times []time.Duration
	var rep *query.VerifyReport
	heap := startHeapPeak()
	for i := 0; i < cfg.Runs; i++ {
		start := time.Now()
		if rep, err = q.Verify(ctx, query.VerifyScope{Period: dayP}); err != nil {
			heap.stop()
			return nil, err
		}
		times = append(times, time.Since(start))
	}
	dayPeak := heap.stop()
	line("verify", "1 day", strconv.Itoa(rep.Events), fmtMS(sortedMedian(times)), fmtMS(slices.Min(times)), fmtMS(slices.Max(times)), "-")
	sum.VerifyDay, sum.Failed = sortedMedian(times), failed
	sum.VerifyDayEvents, sum.VerifyDayPeakHeap = rep.Events, dayPeak
	fmt.Fprintf(out, "\nverify read %d rows: %d events in %d chains, %d breaks (rows = events verified)\n",
		rep.Rows, rep.Events, rep.Chains, len(rep.Findings))
	// The whole period once: memory must not grow with the scope.
	heap = startHeapPeak()
	start := time.Now()
	prep, err := q.Verify(ctx, query.VerifyScope{Period: fullP})
	sum.VerifyPeriod, sum.VerifyPeriodPeakHeap = time.Since(start), heap.stop()
	if err != nil {
		return nil, err
	}
	sum.VerifyPeriodEvents = prep.Events
	fmt.Fprintf(out, "verify throughput: 1 day %.0f events/s (median), peak Go heap %d MiB; %d days %d events in %s, %.0f events/s, peak Go heap %d MiB (target ≥ 200k events/s)\n",
		float64(rep.Events)/sum.VerifyDay.Seconds(), dayPeak>>20, cfg.Days, prep.Events, sum.VerifyPeriod.Round(time.Millisecond),
		float64(prep.Events)/sum.VerifyPeriod.Seconds(), sum.VerifyPeriodPeakHeap>>20)
	if failed > 0 {
		return sum, fmt.Errorf("bench: %d report runs failed", failed)
	}
	return sum, nil
}

func sortedMedian(ts []time.Duration) time.Duration {
	s := slices.Clone(ts)
	slices.Sort(s)
	return s[len(s)/2]
}

func fmtMS(d time.Duration) string { return strconv.FormatInt(d.Milliseconds(), 10) + " ms" }

func okMark(d time.Duration) string {
	if d <= 2*time.Second {
		return "yes"
	}
	return "NO"
}

// generate writes cfg.Events real events (stamped chains, canonical raw)
// in sessions of about 30 events, evenly over cfg.Days days.
func generate(ctx context.Context, w *store.Store, cfg Config) (int, int64, error) {
	const perSession = 30
	sessions := cfg.Events / perSession
	if sessions == 0 {
		sessions = 1
	}
	batches := make(chan []store.EventRow, 4)
	var genErr error
	var errOnce sync.Once
	var wg sync.WaitGroup
	workers := 2
	gctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var mu sync.Mutex
	total, bytes := 0, int64(0)
	for wk := 0; wk < workers; wk++ {
		wg.Add(1)
		go func(wk int) {
			defer wg.Done()
			// Ids from the session's own time, not the wall clock: the same
			// -n and --days give the same rows on every run and topology,
			// so their reports can be compared row for row.
			periodStart := eventgen.PeriodEnd.AddDate(0, 0, -cfg.Days)
			span := eventgen.PeriodEnd.Sub(periodStart)
			var base time.Time
			ids, _ := events.NewIDGen(int64(100+wk), events.WithClock(func() time.Time { return base }))
			var batch []store.EventRow
			for s := wk; s < sessions; s += workers {
				mu.Lock()
				done := total >= cfg.Events
				mu.Unlock()
				if done || gctx.Err() != nil {
					break
				}
				base = periodStart.Add(span / time.Duration(sessions) * time.Duration(s))
				rows, err := eventgen.PeriodSession(s, sessions, cfg.Days, ids)
				if err != nil {
					errOnce.Do(func() { genErr = err; cancel() })
					return
				}
				mu.Lock()
				total += len(rows)
				for _, r := range rows {
					bytes += int64(len(r.Raw))
				}
				mu.Unlock()
				batch = append(batch, rows...)
				if len(batch) >= 50_000 {
					select {
					case batches <- batch:
					case <-gctx.Done():
						return
					}
					batch = nil
				}
			}
			if len(batch) > 0 {
				select {
				case batches <- batch:
				case <-gctx.Done():
				}
			}
		}(wk)
	}
	go func() { wg.Wait(); close(batches) }()
	inserted := 0
	last := time.Now()
	for b := range batches {
		if err := insertRetry(ctx, w, b, cfg.Logger); err != nil {
			errOnce.Do(func() { genErr = err; cancel() })
			for range batches {
			}
			break
		}
		inserted += len(b)
		if time.Since(last) > 10*time.Second {
			cfg.Logger.Info("bench: inserting", "events", inserted)
			last = time.Now()
		}
	}
	if genErr != nil {
		return 0, 0, genErr
	}
	return inserted, bytes, nil
}

// insertRetry retries a batch while the server restarts (other tests on a
// shared machine restart it). A batch that did land before the error is
// stored twice: identical rows, which FINAL and verify count once.
func insertRetry(ctx context.Context, w *store.Store, b []store.EventRow, log *slog.Logger) error {
	var err error
	for attempt := 0; attempt < 30; attempt++ {
		if err = w.InsertEvents(ctx, b); err == nil {
			return nil
		}
		log.Warn("bench: insert failed, retrying", "attempt", attempt+1, "err", err)
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(2 * time.Second):
		}
	}
	return err
}
