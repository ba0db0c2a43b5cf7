package main

import (
	"flag"
	"fmt"
	"log/slog"
	"os"
	"reflect"
	"strings"
	"time"

	"github.com/agentaudit/agentaudit/internal/runner"
)

// loadConfig fills a runner.Config from the environment (fields tagged env)
// and registers the flag fields on fs. Parse fs afterwards.
func loadConfig(fs *flag.FlagSet) (*runner.Config, *string, error) {
	cfg := &runner.Config{}
	v := reflect.ValueOf(cfg).Elem()
	t := v.Type()
	for i := range t.NumField() {
		f := t.Field(i)
		name := f.Tag.Get("env")
		raw, _ := os.LookupEnv(name)
		// A field with both tags takes the flag, else the environment.
		if flagName := f.Tag.Get("flag"); flagName != "" {
			help := flagHelp[flagName]
			if name != "" {
				help += " (env " + name + ")"
			}
			fs.StringVar(v.Field(i).Addr().Interface().(*string), flagName, raw, help)
			continue
		}
		if name == "" || name == "-" || raw == "" {
			continue
		}
		fv := v.Field(i)
		switch fv.Interface().(type) {
		case string:
			fv.SetString(raw)
		case []string:
			fv.Set(reflect.ValueOf(strings.Split(raw, ",")))
		case time.Duration:
			d, err := time.ParseDuration(raw)
			if err != nil {
				return nil, nil, fmt.Errorf("%s: %v", name, err)
			}
			fv.SetInt(int64(d))
		}
	}
	level := fs.String("log-level", "warn", "log level on stderr: debug, info, warn, error")
	return cfg, level, nil
}

var flagHelp = map[string]string{
	"policy":    "tool-call policy file (default: the shipped policy)",
	"profile":   "sandbox profile file (default: the shipped profile)",
	"workspace": "host directory mounted read-write at /workspace",
	"egress-policy": "egress policy file; without one the sandbox has no network at all " +
		"(see deploy/policies/egress.yaml)",
}

func logger(level string) *slog.Logger {
	var l slog.Level
	if err := l.UnmarshalText([]byte(level)); err != nil {
		l = slog.LevelWarn
	}
	return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: l}))
}
