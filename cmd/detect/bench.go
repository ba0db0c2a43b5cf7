package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"runtime/pprof"
	"time"

	"github.com/agentaudit/agentaudit/internal/bench/detectbench"
	"github.com/agentaudit/agentaudit/internal/benchreport"
	"github.com/agentaudit/agentaudit/internal/envflag"
)

// benchCmd is `detect bench`: alert latency at a steady event rate.
func benchCmd(ctx context.Context, args []string) error {
	c := detectbench.Config{Out: os.Stdout}
	fs := envflag.New("detect bench", flag.ContinueOnError)
	brokersFlag(fs, &c.Brokers)
	rulesFlag(fs, &c.RulesDir)
	fs.IntVar(&c.Rate, "rate", 20000, "events per second")
	fs.DurationVar(&c.Duration, "duration", 0, "duration of the load (default 30s)")
	fs.DurationVar(&c.Warmup, "warmup", 0, "first part of the load left out of the figures (default 3s)")
	fs.IntVar(&c.SessionLen, "session-len", 60, "events per session; each has one event that fires a rule")
	fs.DurationVar(&c.Baseline, "baseline", 0, "length of the broker-alone phase before the run (default 10s; negative skips it)")
	fs.IntVar(&c.MaxPollRecords, "max-poll", 0, "override the service's records-per-poll bound")
	cpuprofile := fs.String("cpuprofile", "", "write a CPU profile of the run to this file")
	jsonOut := fs.String("json", "", "also write the figures as JSON to this file (for make bench)")
	logFlags(fs)
	if err := fs.Parse(args); err != nil {
		return err
	}
	if err := needBrokers(c.Brokers); err != nil {
		return err
	}
	if *cpuprofile != "" {
		f, err := os.Create(*cpuprofile)
		if err != nil {
			return err
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return err
		}
		defer pprof.StopCPUProfile()
	}
	c.Logger = logger()
	res, err := detectbench.Run(ctx, c)
	if err != nil {
		return err
	}
	if *jsonOut != "" {
		ms := func(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
		figs := benchreport.Figures{
			"alert_p50_ms": ms(res.P50), "alert_p99_ms": ms(res.P99), "alert_max_ms": ms(res.Max),
			"broker_p50_ms": ms(res.BrokerP50), "broker_p99_ms": ms(res.BrokerP99),
			"broker_alone_p50_ms": ms(res.AloneP50), "broker_alone_p99_ms": ms(res.AloneP99),
			"triggers": float64(res.Triggers), "alerts": float64(res.Alerts), "rate": res.Rate,
		}
		if err := benchreport.WriteFigures(*jsonOut, figs); err != nil {
			return err
		}
	}
	if res.Missing > 0 {
		return fmt.Errorf("%d triggering events raised no alert", res.Missing)
	}
	return nil
}
