package main

import (
	"context"
	"flag"
	"os"

	"github.com/agentaudit/agentaudit/internal/envflag"
	"github.com/agentaudit/agentaudit/internal/ingest"
)

func migrateCmd(ctx context.Context, args []string) error {
	var cfg ingest.Config
	fs := envflag.New("ingest migrate", flag.ContinueOnError)
	storeFlags(fs, &cfg)
	logFlags(fs)
	if err := parse(fs, args); err != nil {
		return err
	}
	cfg.Logger = logger()
	return ingest.Migrate(ctx, cfg, os.Stdout)
}
