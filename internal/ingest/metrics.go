package ingest

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Metrics names (all prefixed agentaudit_ingest_).
type metrics struct {
	reg *prometheus.Registry

	consumed    *prometheus.CounterVec   // records_consumed_total{topic}
	inserted    prometheus.Counter       // rows_inserted_total
	dlq         *prometheus.CounterVec   // dlq_records_total{reason_code}
	lag         *prometheus.GaugeVec     // consumer_lag{topic,partition}
	batchRows   prometheus.Histogram     // batch_rows
	insertSecs  *prometheus.HistogramVec // insert_duration_seconds{table}
	breaks      *prometheus.CounterVec   // chain_breaks_total{kind}
	redelivered prometheus.Counter       // redelivered_events_total
	parked      prometheus.Gauge         // chain_parked_events
	lookups     prometheus.Counter       // chain_lookups_total
	paused      *prometheus.GaugeVec     // fetch_paused{topic}
	retries     *prometheus.CounterVec   // retries_total{op}
	commits     prometheus.Counter       // commits_total
	chUp        prometheus.Gauge         // clickhouse_up
	lastCommit  prometheus.Gauge         // last_commit_timestamp_seconds

	// healthy is false while a ClickHouse or Kafka write is being retried.
	failing atomic.Int32
}

func newMetrics() *metrics {
	const ns = "agentaudit_ingest_"
	m := &metrics{
		reg:      prometheus.NewRegistry(),
		consumed: prometheus.NewCounterVec(prometheus.CounterOpts{Name: ns + "records_consumed_total", Help: "Kafka records consumed, by topic."}, []string{"topic"}),
		inserted: prometheus.NewCounter(prometheus.CounterOpts{Name: ns + "rows_inserted_total", Help: "Event rows ClickHouse accepted (redeliveries included)."}),
		dlq:      prometheus.NewCounterVec(prometheus.CounterOpts{Name: ns + "dlq_records_total", Help: "Records dead-lettered, by reason code."}, []string{"reason_code"}),
		lag:      prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: ns + "consumer_lag", Help: "High watermark minus the next offset to consume, per partition, as of the last fetch."}, []string{"topic", "partition"}),
		batchRows: prometheus.NewHistogram(prometheus.HistogramOpts{Name: ns + "batch_rows", Help: "Rows per inserted events batch.",
			Buckets: prometheus.ExponentialBuckets(1, 4, 10)}),
		insertSecs: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: ns + "insert_duration_seconds", Help: "Latency of accepted ClickHouse inserts, by table.",
			Buckets: prometheus.ExponentialBuckets(0.005, 2, 12)}, []string{"table"}),
		breaks:      prometheus.NewCounterVec(prometheus.CounterOpts{Name: ns + "chain_breaks_total", Help: "Hash-chain anomalies found, by kind."}, []string{"kind"}),
		redelivered: prometheus.NewCounter(prometheus.CounterOpts{Name: ns + "redelivered_events_total", Help: "Events seen again with identical content (collapsed by FINAL)."}),
		parked:      prometheus.NewGauge(prometheus.GaugeOpts{Name: ns + "chain_parked_events", Help: "Events waiting for their chain predecessor."}),
		paused:      prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: ns + "fetch_paused", Help: "1 while fetching the topic is paused because it runs ahead of the other topic."}, []string{"topic"}),
		lookups:     prometheus.NewCounter(prometheus.CounterOpts{Name: ns + "chain_lookups_total", Help: "Chain positions looked up in ClickHouse (parked past grace, resumed chains, suspects)."}),
		retries:     prometheus.NewCounterVec(prometheus.CounterOpts{Name: ns + "retries_total", Help: "Failed writes that were retried, by operation."}, []string{"op"}),
		commits:     prometheus.NewCounter(prometheus.CounterOpts{Name: ns + "commits_total", Help: "Offset commits."}),
		chUp:        prometheus.NewGauge(prometheus.GaugeOpts{Name: ns + "clickhouse_up", Help: "1 when the last ClickHouse write succeeded."}),
		lastCommit:  prometheus.NewGauge(prometheus.GaugeOpts{Name: ns + "last_commit_timestamp_seconds", Help: "Unix time of the last offset commit."}),
	}
	m.reg.MustRegister(m.consumed, m.inserted, m.dlq, m.lag, m.batchRows, m.insertSecs, m.breaks,
		m.redelivered, m.parked, m.lookups, m.paused, m.retries, m.commits, m.chUp, m.lastCommit,
		prometheus.NewGoCollector(), prometheus.NewProcessCollector(prometheus.ProcessCollectorOpts{}))
	m.chUp.Set(1)
	return m
}

// serve listens on addr (already checked to be loopback) until ctx ends.
// It returns the bound address, so ":0" works in tests.
func (m *metrics) serve(ctx context.Context, addr string, log *slog.Logger) (string, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return "", fmt.Errorf("ingest: metrics listener: %w", err)
	}
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{}))
	// Profiles for diagnosing throughput and memory; the listener is
	// loopback-only (Config.Validate).
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, r *http.Request) {
		// Unhealthy while writes are being retried, so an operator (or a
		// readiness probe) sees a ClickHouse or broker outage.
		if m.failing.Load() > 0 {
			http.Error(w, "degraded: writes are being retried", http.StatusServiceUnavailable)
			return
		}
		fmt.Fprintln(w, "ok")
	})
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go func() {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error("metrics server stopped", "err", err)
		}
	}()
	go func() {
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		srv.Shutdown(sctx)
	}()
	return ln.Addr().String(), nil
}
