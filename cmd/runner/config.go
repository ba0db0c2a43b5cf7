package main

import (
	"cmp"
	"log/slog"
	"os"
	"reflect"

	"github.com/agentaudit/agentaudit/internal/envflag"
	"github.com/agentaudit/agentaudit/internal/runner"
)

// loadConfig binds a runner.Config on fs: fields tagged flag become flags
// (defaulting from their env tag, if any), fields tagged env alone are
// read from the environment. Parse fs afterwards.
func loadConfig(fs *envflag.FlagSet) (*runner.Config, *string) {
	cfg := &runner.Config{}
	v := reflect.ValueOf(cfg).Elem()
	t := v.Type()
	for i := range t.NumField() {
		f := t.Field(i)
		if !f.IsExported() {
			continue
		}
		name := f.Tag.Get("env")
		if name == "-" {
			name = ""
		}
		p := v.Field(i).Addr().Interface()
		if flagName := f.Tag.Get("flag"); flagName != "" {
			fs.StringEnv(p.(*string), flagName, name, "", flagHelp[flagName])
			continue
		}
		if name != "" {
			fs.FromEnv(p, name, cmp.Or(envHelp[name], f.Name))
		}
	}
	level := fs.String("log-level", "warn", "log level on stderr: debug, info, warn, error")
	return cfg, level
}

var flagHelp = map[string]string{
	"policy":    "tool-call policy file (default: the shipped policy)",
	"profile":   "sandbox profile file (default: the shipped profile)",
	"workspace": "host directory mounted read-write at /workspace",
	"egress-policy": "egress policy file; without one the sandbox has no network at all " +
		"(see deploy/policies/egress.yaml)",
}

// envHelp describes the variables in --help; README's configuration
// reference has the whole story.
var envHelp = map[string]string{
	"KAFKA_BROKERS":         "Kafka brokers, comma-separated (required)",
	"PODMAN_SOCKET":         "rootless Podman API socket (required)",
	"SANDBOX_IMAGE":         "sandbox image",
	"RUNNER_ID":             "runner id (default runner-<host>, or the next free -2, -3, …)",
	"RUNNER_NODE_ID":        "snowflake node 0–999, one per runner",
	"RUNNER_TENANT":         "tenant of the events (default default)",
	"RUNNER_OPERATOR":       "requester of every approval the runner asks for (default the user)",
	"APPROVAL_KEYS":         "the approvals service's public key set (keys.json)",
	"APPROVAL_TIMEOUT":      "how long an ask waits for a decision (default 15m)",
	"SPOOL_DIR":             "spool of events Kafka cannot take yet",
	"AUDIT_ACK_TIMEOUT":     "how long an event waits for Kafka's acknowledgement (default 3s)",
	"EGRESS_SOCKET_ROOT":    "per-session egress proxy sockets (default /run/agentaudit/egress)",
	"SANDBOX_SUPERVISOR":    "the sandbox-supervisor binary (default next to the runner)",
	"SANDBOX_SOCKET_ROOT":   "per-session supervisor sockets (default /run/agentaudit/sandbox)",
	"RUNNER_LOCK_DIR":       "where live runner ids are locked (default /run/agentaudit/runners)",
	"PODMAN_UID":            "the sandbox user (default the Podman socket's owner)",
	"AUDIT_TOPIC_EVENTS":    "events topic",
	"AUDIT_TOPIC_APPROVALS": "approvals topic",
	"AUDIT_TOPIC_DLQ":       "dead-letter topic",
}

func logger(level string) *slog.Logger {
	var l slog.Level
	if err := l.UnmarshalText([]byte(level)); err != nil {
		l = slog.LevelWarn
	}
	return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: l}))
}
