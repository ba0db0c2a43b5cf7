package detect

import (
	"context"
	"errors"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// metrics are the service's Prometheus metrics, in a registry of its own
// so several services can run in one process (tests do).
type metrics struct {
	s   *Service
	reg *prometheus.Registry

	events, invalid                           *prometheus.CounterVec
	emitted, dropped                          *prometheus.CounterVec
	recovered                                 *prometheus.CounterVec
	forwarded, forwardErrors, duplicates      prometheus.Counter
	emitErrors                                prometheus.Counter
	checkpoints, checkpointErrors, logRecords prometheus.Counter
	checkpointBytes                           prometheus.Histogram
	sqlRuns, sqlErrors, sqlAlerts             *prometheus.CounterVec
	sqlSeconds                                *prometheus.HistogramVec
	suppressedAlerts                          *prometheus.CounterVec

	mu       sync.Mutex
	listenOn string
}

var ruleDescs = struct {
	evals, matches, alerts, summaries, suppressed, errors, seconds *prometheus.Desc
}{
	evals:      prometheus.NewDesc("detect_rule_evaluations_total", "Match expressions evaluated, per rule.", []string{"rule"}, nil),
	matches:    prometheus.NewDesc("detect_rule_matches_total", "Events that matched, per rule.", []string{"rule"}, nil),
	alerts:     prometheus.NewDesc("detect_rule_alerts_total", "Alerts raised after dedup, per rule.", []string{"rule"}, nil),
	summaries:  prometheus.NewDesc("detect_rule_summaries_total", "Summaries of suppressed matches, per rule.", []string{"rule"}, nil),
	suppressed: prometheus.NewDesc("detect_rule_suppressed_total", "Matches folded into an alert by dedup, per rule.", []string{"rule"}, nil),
	errors:     prometheus.NewDesc("detect_rule_errors_total", "Evaluations that failed, per rule.", []string{"rule"}, nil),
	seconds:    prometheus.NewDesc("detect_rule_evaluation_seconds_total", "Time spent evaluating match expressions (sampled), per rule.", []string{"rule"}, nil),
}

func newMetrics(s *Service) *metrics {
	m := &metrics{s: s, reg: prometheus.NewRegistry()}
	f := func(c prometheus.Collector) { m.reg.MustRegister(c) }
	m.events = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "detect_records_total", Help: "Records read, per topic."}, []string{"topic"})
	m.invalid = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "detect_invalid_records_total", Help: "Records skipped because they do not decode as valid events, per topic."}, []string{"topic"})
	m.emitted = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "detect_emitted_total", Help: "Events written, per rule and event type."}, []string{"rule", "event_type"})
	m.dropped = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "detect_dropped_total", Help: "Events the producer refused as invalid, per rule and event type."}, []string{"rule", "event_type"})
	m.recovered = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "detect_outbox_recovered_total", Help: "After a restart: checkpointed events already_written or written_now, and alerts a replay raised again (replayed, not written twice)."}, []string{"outcome"})
	m.forwarded = prometheus.NewCounter(prometheus.CounterOpts{Name: "detect_forwarded_total", Help: "Matches re-keyed to the repartition topic."})
	m.forwardErrors = prometheus.NewCounter(prometheus.CounterOpts{Name: "detect_forward_errors_total", Help: "Failed writes to the repartition topic (retried)."})
	m.duplicates = prometheus.NewCounter(prometheus.CounterOpts{Name: "detect_forward_duplicates_total", Help: "Re-keyed matches dropped as already applied."})
	m.emitErrors = prometheus.NewCounter(prometheus.CounterOpts{Name: "detect_emit_errors_total", Help: "Failed alert writes (retried)."})
	m.checkpoints = prometheus.NewCounter(prometheus.CounterOpts{Name: "detect_checkpoints_total", Help: "Checkpoints written."})
	m.logRecords = prometheus.NewCounter(prometheus.CounterOpts{Name: "detect_log_records_total", Help: "Records of decided alerts written ahead of them between checkpoints."})
	m.checkpointErrors = prometheus.NewCounter(prometheus.CounterOpts{Name: "detect_checkpoint_errors_total", Help: "Failed checkpoint writes (retried)."})
	m.checkpointBytes = prometheus.NewHistogram(prometheus.HistogramOpts{Name: "detect_checkpoint_bytes", Help: "Size of checkpoints.", Buckets: prometheus.ExponentialBuckets(256, 4, 10)})
	m.sqlRuns = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "detect_sql_runs_total", Help: "SQL rule runs, per rule."}, []string{"rule"})
	m.sqlErrors = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "detect_sql_errors_total", Help: "Failed SQL rule runs, per rule."}, []string{"rule"})
	m.sqlAlerts = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "detect_sql_alerts_total", Help: "Alerts from SQL rules after dedup, per rule."}, []string{"rule"})
	m.suppressedAlerts = newSuppressedCounter()
	m.sqlSeconds = prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "detect_sql_run_seconds", Help: "SQL rule run time, per rule."}, []string{"rule"})
	for _, c := range []prometheus.Collector{m.events, m.invalid, m.emitted, m.dropped, m.recovered, m.forwarded, m.forwardErrors, m.duplicates,
		m.emitErrors, m.checkpoints, m.logRecords, m.checkpointErrors, m.checkpointBytes, m.sqlRuns, m.sqlErrors, m.sqlAlerts, m.sqlSeconds, ruleCollector{s},
		m.suppressedAlerts} {
		f(c)
	}
	f(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "detect_partitions", Help: "Partitions this instance holds."}, func() float64 {
		s.mu.Lock()
		defer s.mu.Unlock()
		return float64(len(s.tasks))
	}))
	return m
}

// ruleCollector reports per-rule counters summed over every engine the
// service runs and has run (partitions that moved away are kept in
// retired, so counters never go down).
type ruleCollector struct{ s *Service }

func (c ruleCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{ruleDescs.evals, ruleDescs.matches, ruleDescs.alerts, ruleDescs.summaries, ruleDescs.suppressed, ruleDescs.errors, ruleDescs.seconds} {
		ch <- d
	}
}

func (c ruleCollector) Collect(ch chan<- prometheus.Metric) {
	for id, st := range c.s.RuleStats() {
		for _, m := range []struct {
			d *prometheus.Desc
			v float64
		}{
			{ruleDescs.evals, float64(st.Evaluations)}, {ruleDescs.matches, float64(st.Matches)},
			{ruleDescs.alerts, float64(st.Alerts)}, {ruleDescs.summaries, float64(st.Summaries)},
			{ruleDescs.suppressed, float64(st.Suppressed)}, {ruleDescs.errors, float64(st.Errors)},
			{ruleDescs.seconds, st.EvalTime.Seconds()},
		} {
			ch <- prometheus.MustNewConstMetric(m.d, prometheus.CounterValue, m.v, id)
		}
	}
}

// RuleStats returns per-rule counters over every partition this service
// holds or has held.
func (s *Service) RuleStats() map[string]RuleStats {
	s.mu.Lock()
	out := make(map[string]RuleStats, len(s.retired))
	for id, st := range s.retired {
		out[id] = st
	}
	tasks := s.sortedTasks()
	s.mu.Unlock()
	for _, r := range s.rs.Rules {
		if r.Enabled {
			if _, ok := out[r.ID]; !ok {
				out[r.ID] = RuleStats{}
			}
		}
	}
	for _, t := range tasks {
		for id, st := range t.ruleStats() {
			r := out[id]
			r.Add(st)
			out[id] = r
		}
	}
	return out
}

func (m *metrics) addr() string {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.listenOn
}

// serve starts /metrics and /healthz on addr ("" serves nothing).
func (m *metrics) serve(addr string) (stop func(), err error) {
	if addr == "" {
		return func() {}, nil
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, err
	}
	m.mu.Lock()
	m.listenOn = ln.Addr().String()
	m.mu.Unlock()
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{}))
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		// Healthy while the poll loop turns: a wedged loop (Kafka gone,
		// an emit retrying) shows here.
		last := time.Unix(0, m.s.lastPoll.Load())
		if time.Since(last) > 30*time.Second {
			http.Error(w, "poll loop stalled since "+last.UTC().Format(time.RFC3339), http.StatusServiceUnavailable)
			return
		}
		w.Write([]byte("ok\n"))
	})
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go func() {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			m.s.log.Error("metrics server", "err", err)
		}
	}()
	return func() {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		srv.Shutdown(ctx)
	}, nil
}
