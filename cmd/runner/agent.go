package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"strings"

	"github.com/agentaudit/agentaudit/internal/envflag"
	"github.com/agentaudit/agentaudit/internal/runner"
)

// agentCmd is `runner agent [--agent codex|claude] [flags] -- AGENT ARGS…`.
func agentCmd(ctx context.Context, args []string) int {
	fs := envflag.New("runner agent", flag.ContinueOnError)
	cfg, level := loadConfig(fs)
	agent := fs.String("agent", runner.AgentCodex, "the agent CLI to run in the sandbox: codex or claude")
	var agentsDir, hookBin, text string
	fs.StringEnv(&agentsDir, "agents-dir", "AGENTAUDIT_AGENTS", "", "the pinned npm install of the agents (default testenv/agents in the source)")
	fs.StringEnv(&hookBin, "hook-binary", "AGENTAUDIT_HOOK_BINARY", "", "cmd/agent-hook, static (default agent-hook next to the runner)")
	modelURL := fs.String("model-url", "", "the model API base URL, plain http:// (the egress proxy speaks TLS upstream); default the agent's real API")
	keyFile := fs.String("api-key-file", "", "file holding the model API key (default: OPENAI_API_KEY or ANTHROPIC_API_KEY from the environment)")
	timeout := fs.Duration("timeout", 0, "end the agent after this long (default the profile's max_exec_timeout)")
	fs.StringEnv(&text, "telemetry-text", "RUNNER_TELEMETRY_TEXT", "hash", "the agent's own prompt, response and tool text in its telemetry events: store (secrets redacted), hash (sha256 and length) or drop; tokens and cost are always kept")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	cfg.Logger = logger(*level)
	key, err := apiKey(*agent, *keyFile)
	if err != nil {
		fmt.Fprintf(os.Stderr, "runner agent: %v\n", err)
		return runner.ExitError
	}
	code, err := runner.RunAgent(ctx, *cfg, runner.AgentOptions{
		Agent: *agent, Args: fs.Args(), AgentsDir: agentsDir, HookBinary: hookBin,
		ModelURL: *modelURL, APIKey: key, Timeout: *timeout, TelemetryText: text,
	})
	if err != nil {
		fmt.Fprintf(os.Stderr, "runner agent: %v\n", err)
	}
	return code
}

// apiKey reads the model API key from file, else from the agent's usual
// variable. The runner keeps it: the sandbox only ever sees a placeholder.
func apiKey(agent, file string) (string, error) {
	if file != "" {
		b, err := os.ReadFile(file)
		if err != nil {
			return "", fmt.Errorf("--api-key-file: %w", err)
		}
		return strings.TrimSpace(string(b)), nil
	}
	name := "OPENAI_API_KEY"
	if agent == runner.AgentClaude {
		name = "ANTHROPIC_API_KEY"
	}
	if k := os.Getenv(name); k != "" {
		// Out of this process's environment too: nothing started from
		// here inherits it.
		os.Unsetenv(name)
		return k, nil
	}
	fmt.Fprintf(os.Stderr, "runner agent: no model API key (%s or --api-key-file): requests reach the model without one\n", name)
	return "", nil
}
