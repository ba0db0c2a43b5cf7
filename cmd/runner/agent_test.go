package main

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/agentaudit/agentaudit/internal/runner"
)

// TestAPIKey: the model API key comes from --api-key-file (trimmed), else
// from the agent's usual variable, which is then unset so that nothing the
// runner starts inherits it.
func TestAPIKey(t *testing.T) {
	file := filepath.Join(t.TempDir(), "key")
	if err := os.WriteFile(file, []byte("  sk-from-file\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name, agent, file string
		env               map[string]string
		want, left        string // the key, and the variable named in left that must be unset after
		wantErr           bool
	}{
		{name: "file wins", agent: runner.AgentCodex, file: file, env: map[string]string{"OPENAI_API_KEY": "sk-env"}, want: "sk-from-file"},
		{name: "missing file", agent: runner.AgentCodex, file: file + ".none", wantErr: true},
		{name: "codex env", agent: runner.AgentCodex, env: map[string]string{"OPENAI_API_KEY": "sk-openai", "ANTHROPIC_API_KEY": "sk-other"},
			want: "sk-openai", left: "OPENAI_API_KEY"},
		{name: "claude env", agent: runner.AgentClaude, env: map[string]string{"OPENAI_API_KEY": "sk-other", "ANTHROPIC_API_KEY": "sk-anthropic"},
			want: "sk-anthropic", left: "ANTHROPIC_API_KEY"},
		{name: "none", agent: runner.AgentClaude, env: map[string]string{"ANTHROPIC_API_KEY": ""}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			for k, v := range tc.env {
				t.Setenv(k, v)
			}
			got, err := apiKey(tc.agent, tc.file)
			if (err != nil) != tc.wantErr || got != tc.want {
				t.Fatalf("apiKey = %q, %v; want %q (error %v)", got, err, tc.want, tc.wantErr)
			}
			if tc.left != "" {
				if v, ok := os.LookupEnv(tc.left); ok {
					t.Errorf("%s still set after it was read: %q", tc.left, v)
				}
			}
		})
	}
}
