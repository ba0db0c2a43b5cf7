package main

import (
	"context"
	"errors"
	"flag"
	"log/slog"
	"os"
	"time"

	"github.com/agentaudit/agentaudit/internal/bench/querybench"
	"github.com/agentaudit/agentaudit/internal/benchreport"
	"github.com/agentaudit/agentaudit/internal/envflag"
)

// runBench is `query bench`: it writes a bench database with the writer
// account (CLICKHOUSE_USER/CLICKHOUSE_PASSWORD), then times the reports as
// the read-only account.
func runBench(ctx context.Context, args []string) error {
	var (
		cfg   Config
		bench querybench.Config
	)
	fs := envflag.New("bench", flag.ContinueOnError)
	cfg.connFlags(fs)
	// Never CLICKHOUSE_DATABASE: that names the audit database.
	fs.StringVar(&cfg.Database, "database", "agentaudit_bench", "bench database, created and filled by the writer account")
	cfg.outputFlags(fs)
	bench.WriterUser = "agentaudit_writer"
	fs.FromEnv(&bench.WriterUser, "CLICKHOUSE_USER", "writer account that creates and fills the bench database (default agentaudit_writer)")
	fs.FromEnv(&bench.WriterPassword, "CLICKHOUSE_PASSWORD", "its password")
	fs.IntVar(&bench.Events, "n", 10_000_000, "events to generate")
	fs.IntVar(&bench.Days, "days", 30, "days the events are spread over")
	fs.IntVar(&bench.Runs, "runs", 5, "timings per report (the median is shown)")
	fs.BoolVar(&bench.Fresh, "fresh", false, "drop the bench database first")
	fs.BoolVar(&bench.VerifyOnly, "verify-only", false, "time verify alone over the existing bench database (no migration, no reports)")
	fs.StringEnv(&bench.Cluster, "clickhouse-cluster", "CLICKHOUSE_CLUSTER", "", "ClickHouse cluster `name` that --addr belongs to: the bench database is installed ON CLUSTER, generated through the Distributed tables and merged on the local ones; empty for one server")
	jsonOut := fs.String("json", "", "also write the figures as JSON to this file (for make bench)")
	pos, err := parse(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 0 {
		return errors.New("usage: query bench [-n EVENTS] [--days D] [--runs R] [--fresh] [--verify-only] [--clickhouse-cluster NAME]")
	}
	if err := cfg.validate(); err != nil {
		return err
	}
	if cfg.Database == "agentaudit" {
		return errors.New("--database: the bench writes its own database; do not point it at the audit database")
	}
	bench.Reader = cfg.query()
	bench.Reader.Cluster = bench.Cluster
	bench.Logger = slog.New(slog.NewTextHandler(os.Stderr, nil))
	streamingGC() // as query verify runs
	sum, err := querybench.Run(ctx, bench, os.Stdout)
	if sum != nil && *jsonOut != "" {
		ms := func(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
		figs := benchreport.Figures{
			"events": float64(sum.Events), "days": float64(sum.Days),
			"shards": float64(sum.Shards), "replicas": float64(sum.Replicas),
			"slowest_day_ms": ms(sum.SlowestDay), "slowest_period_ms": ms(sum.SlowestPeriod),
			"failed_reports": float64(sum.Failed), "verify_day_ms": ms(sum.VerifyDay),
			"verify_day_events": float64(sum.VerifyDayEvents), "verify_day_heap_mib": float64(sum.VerifyDayPeakHeap >> 20),
			"verify_period_ms": ms(sum.VerifyPeriod), "verify_period_events": float64(sum.VerifyPeriodEvents),
			"verify_period_heap_mib": float64(sum.VerifyPeriodPeakHeap >> 20),
		}
		for name, t := range sum.Reports {
			figs["report_day_ms."+name], figs["report_period_ms."+name] = ms(t.Day), ms(t.Period)
		}
		werr := benchreport.WriteFigures(*jsonOut, figs)
		err = errors.Join(err, werr)
	}
	return err
}
