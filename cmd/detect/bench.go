package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"runtime/pprof"

	"github.com/agentaudit/agentaudit/internal/detect"
)

// benchCmd is `detect bench`: alert latency at a steady event rate.
func benchCmd(ctx context.Context, args []string) error {
	c := detect.BenchConfig{Out: os.Stdout}
	fs := flag.NewFlagSet("detect bench", flag.ContinueOnError)
	brokersFlag(fs, &c.Brokers)
	fs.StringVar(&c.RulesDir, "rules", env("DETECT_RULES", "rules"), "rule directory (env DETECT_RULES)")
	fs.IntVar(&c.Rate, "rate", 20000, "events per second")
	fs.DurationVar(&c.Duration, "duration", 0, "duration of the load (default 30s)")
	fs.DurationVar(&c.Warmup, "warmup", 0, "first part of the load left out of the figures (default 3s)")
	fs.IntVar(&c.SessionLen, "session-len", 60, "events per session; each has one event that fires a rule")
	cpuprofile := fs.String("cpuprofile", "", "write a CPU profile of the run to this file")
	logFlags(fs)
	if err := fs.Parse(args); err != nil {
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
	res, err := detect.Bench(ctx, c)
	if err != nil {
		return err
	}
	if res.Missing > 0 {
		return fmt.Errorf("%d triggering events raised no alert", res.Missing)
	}
	return nil
}
