package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/agentaudit/agentaudit/internal/envflag"
	"github.com/agentaudit/agentaudit/internal/ingest"
)

func retentionCmd(ctx context.Context, args []string) error {
	var cfg ingest.Config
	var keep time.Duration
	var dryRun bool
	fs := envflag.New("ingest retention", flag.ContinueOnError)
	storeFlags(fs, &cfg)
	logFlags(fs)
	fs.Func("keep", "keep data this long: a Go duration or days such as `400d` (required)", func(s string) error {
		d, err := parseKeep(s)
		keep = d
		return err
	})
	fs.BoolVar(&dryRun, "dry-run", false, "print what would be dropped, drop nothing")
	if err := parse(fs, args); err != nil {
		return err
	}
	if keep <= 0 {
		return fmt.Errorf("retention: -keep is required and must be positive (for example -keep 400d)")
	}
	cfg.Logger = logger()
	return ingest.Retention(ctx, cfg, keep, dryRun, os.Stdout)
}

// parseKeep reads "400d" as 400 days, or any time.ParseDuration string.
func parseKeep(s string) (time.Duration, error) {
	if days, ok := strings.CutSuffix(s, "d"); ok {
		n, err := strconv.Atoi(days)
		if err != nil || n <= 0 {
			return 0, fmt.Errorf("keep %q: want a positive number of days such as 400d", s)
		}
		return time.Duration(n) * 24 * time.Hour, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil || d <= 0 {
		return 0, fmt.Errorf("keep %q: want a positive duration such as 400d or 9600h", s)
	}
	return d, nil
}
