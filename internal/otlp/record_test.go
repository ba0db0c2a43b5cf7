//go:build realagents

package otlp

import (
	"bytes"
	"compress/gzip"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/agentaudit/agentaudit/internal/agenttest"
	"github.com/agentaudit/agentaudit/internal/testenv"
)

// TestRecordRealAgents runs the real Codex and Claude Code CLIs (the
// versions testenv/agents pins) against the scripted model with their
// OpenTelemetry export pointed at a recorder, once per encoding, and
// writes every logs request they sent to testdata/real/. Run it after an
// agent upgrade:
//
//	go test -tags realagents,… -run TestRecordRealAgents ./internal/otlp/
//
// TestRealRecordings (untagged) then holds the mapper to them.
func TestRecordRealAgents(t *testing.T) {
	root, err := testenv.Root()
	if err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(root, "testenv", "agents", "node_modules", ".bin")
	out := filepath.Join("testdata", "real")
	os.MkdirAll(out, 0o755)
	for _, tc := range []struct{ agent, enc string }{
		{"codex", "json"}, {"codex", "protobuf"}, {"claude", "json"}, {"claude", "protobuf"},
	} {
		t.Run(tc.agent+"-"+tc.enc, func(t *testing.T) {
			rec := &recorder{}
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			srv := &http.Server{Handler: rec}
			go srv.Serve(ln)
			defer srv.Close()
			otlpURL := "http://" + ln.Addr().String()

			tool, input := "exec_command", map[string]any{"cmd": "echo hello"}
			if tc.agent == "claude" {
				tool, input = "Bash", map[string]any{"command": "echo hello", "description": "say hello"}
			}
			model, err := agenttest.Start(agenttest.Step{Tool: tool, Input: input}, agenttest.Step{Text: "Done: it printed hello."})
			if err != nil {
				t.Fatal(err)
			}
			defer model.Close()
			home := t.TempDir()
			ws := t.TempDir()
			prompt := "Run echo hello in the shell and tell me what it printed."
			var cmd *exec.Cmd
			if tc.agent == "codex" {
				proto := "json"
				if tc.enc == "protobuf" {
					proto = "binary"
				}
				cmd = exec.Command(filepath.Join(bin, "codex"),
					"-c", `sandbox_mode="danger-full-access"`, "-c", `approval_policy="never"`,
					"-c", "features.shell_snapshot=false", "-c", "features.plugins=false", "-c", "features.apps=false",
					"-c", `model_provider="fake"`,
					"-c", fmt.Sprintf(`model_providers.fake={name="fake", base_url="http://%s/v1", wire_api="responses", env_key="OPENAI_API_KEY", request_max_retries=0, stream_max_retries=0}`, model.Addr()),
					"-c", fmt.Sprintf(`otel.exporter={otlp-http={endpoint="%s/v1/logs", protocol="%s"}}`, otlpURL, proto),
					"-c", "otel.log_user_prompt=true",
					"-m", "gpt-5.5", "exec", "--skip-git-repo-check", prompt)
				cmd.Env = append(os.Environ(), "CODEX_HOME="+home, "OPENAI_API_KEY=sk-test-not-a-key")
			} else {
				proto := "http/json"
				if tc.enc == "protobuf" {
					proto = "http/protobuf"
				}
				cmd = exec.Command(filepath.Join(bin, "claude"), "-p", prompt, "--output-format", "stream-json", "--verbose", "--allowedTools", "Bash")
				cmd.Env = append(os.Environ(), "CLAUDE_CONFIG_DIR="+home, "ANTHROPIC_BASE_URL=http://"+model.Addr(), "ANTHROPIC_API_KEY=sk-ant-test-not-a-key",
					"CLAUDE_CODE_ENABLE_TELEMETRY=1", "OTEL_LOGS_EXPORTER=otlp", "OTEL_METRICS_EXPORTER=otlp",
					"OTEL_EXPORTER_OTLP_PROTOCOL="+proto, "OTEL_EXPORTER_OTLP_ENDPOINT="+otlpURL,
					"OTEL_LOG_USER_PROMPTS=1", "OTEL_LOG_TOOL_DETAILS=1", "OTEL_LOGS_EXPORT_INTERVAL=500", "OTEL_METRIC_EXPORT_INTERVAL=1000")
			}
			cmd.Dir = ws
			cmd.Stdin = nil
			var stdout bytes.Buffer
			cmd.Stdout, cmd.Stderr = &stdout, &stdout
			ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
			defer cancel()
			done := make(chan error, 1)
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			go func() { done <- cmd.Wait() }()
			select {
			case err = <-done:
			case <-ctx.Done():
				cmd.Process.Kill()
				err = <-done
			}
			t.Logf("%s exited: %v\n%s", tc.agent, err, tail(stdout.String(), 2000))
			time.Sleep(2 * time.Second) // a last export after exit
			logs := rec.logs()
			if len(logs) == 0 {
				t.Fatalf("no logs request recorded (paths seen: %v)", rec.paths())
			}
			ext := map[string]string{"json": "json", "protobuf": "pb"}[tc.enc]
			old, _ := filepath.Glob(filepath.Join(out, tc.agent+"-*."+ext))
			for _, f := range old {
				os.Remove(f)
			}
			for i, b := range logs {
				os.WriteFile(filepath.Join(out, fmt.Sprintf("%s-%d.%s", tc.agent, i+1, ext)), b.body, 0o644)
				t.Logf("request %d: %s %s %d bytes", i+1, b.ctype, b.cenc, len(b.body))
			}
		})
	}
}

type recorded struct {
	path, ctype, cenc string
	body              []byte
}

type recorder struct {
	mu  sync.Mutex
	got []recorded
}

func (r *recorder) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	var body io.Reader = req.Body
	if req.Header.Get("Content-Encoding") == "gzip" {
		zr, err := gzip.NewReader(req.Body)
		if err == nil {
			body = zr
		}
	}
	b, _ := io.ReadAll(body)
	r.mu.Lock()
	r.got = append(r.got, recorded{req.URL.Path, req.Header.Get("Content-Type"), req.Header.Get("Content-Encoding"), b})
	r.mu.Unlock()
	if strings.Contains(req.Header.Get("Content-Type"), "json") {
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, "{}")
		return
	}
	w.Header().Set("Content-Type", "application/x-protobuf")
}

func (r *recorder) logs() []recorded {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []recorded
	for _, x := range r.got {
		if x.path == PathLogs {
			out = append(out, x)
		}
	}
	return out
}

func (r *recorder) paths() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []string
	for _, x := range r.got {
		out = append(out, x.path)
	}
	return out
}

func tail(s string, n int) string {
	if len(s) > n {
		return s[len(s)-n:]
	}
	return s
}
