package otlp

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/agentaudit/agentaudit/internal/eventlog"
	"github.com/agentaudit/agentaudit/internal/ingest"
	"github.com/agentaudit/agentaudit/internal/store"
	"github.com/agentaudit/agentaudit/internal/testenv"
)

func randHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// TestStandaloneToClickHouse: the recorded Codex session posted as OTLP
// JSON (gzipped, chunked) and the Claude Code session as protobuf to the
// standalone receiver (`ingest otlp`) land in Kafka, and the real ingester
// loads them into ClickHouse: every record an event, chains whole, tokens
// and costs kept, the tenant's text setting applied. Real Kafka and
// ClickHouse (testenv/up).
func TestStandaloneToClickHouse(t *testing.T) {
	brokers := testenv.Kafka(t)
	chAddr := testenv.ClickHouse(t)
	pfx := "test.otlp." + randHex(4)
	topics := eventlog.Topics{Events: pfx + ".events", Approvals: pfx + ".approvals", DLQ: pfx + ".dlq"}

	dir := t.TempDir()
	tokens := filepath.Join(dir, "otlp-tokens.yaml")
	os.WriteFile(tokens, []byte(fmt.Sprintf(`tenants:
  - tenant: acme
    token_sha256: %s
    text: store
    operator: alice@acme.example
  - tenant: globex
    token_sha256: %s
`, sha256Hex(testToken), sha256Hex("globex-token"))), 0o600)

	ctx, cancel := context.WithCancel(context.Background())
	addrc := make(chan net.Addr, 1)
	served := make(chan error, 1)
	go func() {
		served <- Serve(ctx, Config{Listen: "127.0.0.1:0", TokenFile: tokens, Brokers: brokers, Topics: topics, NodeID: 901,
			SpoolDir: filepath.Join(dir, "spool"), Logger: testenv.Logger(t, slog.LevelInfo), OnListen: func(a net.Addr) { addrc <- a }})
	}()
	t.Cleanup(func() {
		cancel()
		if err := <-served; err != nil {
			t.Errorf("Serve: %v", err)
		}
	})
	var base string
	select {
	case a := <-addrc:
		base = "http://" + a.String()
	case err := <-served:
		t.Fatalf("Serve: %v", err)
	case <-time.After(30 * time.Second):
		t.Fatal("receiver did not start in 30s")
	}

	post := func(token, ctype, cenc string, body io.Reader) (int, string) {
		t.Helper()
		req, _ := http.NewRequest("POST", base+PathLogs, body)
		req.Header.Set("Content-Type", ctype)
		if cenc != "" {
			req.Header.Set("Content-Encoding", cenc)
		}
		req.Header.Set("Authorization", "Bearer "+token)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	if code, body := post(testToken, "application/json", "gzip", chunked{bytes.NewReader(gz(t, fixture(t, "codex.json")))}); code != 200 || strings.Contains(body, "partialSuccess") {
		t.Fatalf("codex.json: %d %s", code, body)
	}
	if code, body := post("globex-token", "application/x-protobuf", "", bytes.NewReader(fixture(t, "claude.pb"))); code != 200 || body != "" {
		t.Fatalf("claude.pb: %d %q", code, body)
	}
	if code, _ := post(testToken, "application/json", "", strings.NewReader("{not otlp")); code != 400 {
		t.Errorf("malformed: %d, want 400", code)
	}
	if code, _ := post("wrong", "application/json", "", bytes.NewReader(fixture(t, "codex.json"))); code != 401 {
		t.Errorf("wrong token: %d, want 401", code)
	}
	const want = 10 + 10 // Codex's records less its two stream events, Claude Code's

	// Load with the real ingester into a fresh database.
	env, _ := testenv.Env()
	admin, err := store.Open(context.Background(), store.Config{Addr: chAddr, User: testenv.Get(t, "CLICKHOUSE_ADMIN_USER"),
		Password: env["CLICKHOUSE_ADMIN_PASSWORD"], Database: "default"})
	if err != nil {
		t.Fatal(err)
	}
	db := fmt.Sprintf("test_otlp_%d_%s", os.Getpid(), randHex(4))
	if err := admin.Conn().Exec(context.Background(), "CREATE DATABASE "+db); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		admin.Conn().Exec(context.Background(), "DROP DATABASE IF EXISTS "+db)
		admin.Close()
	})
	ictx, icancel := context.WithCancel(context.Background())
	idone := make(chan error, 1)
	go func() {
		idone <- ingest.Run(ictx, ingest.Config{Brokers: brokers, Group: "test-otlp-" + randHex(4), Topics: topics,
			ClickHouseAddr: chAddr, ClickHouseUser: testenv.Get(t, "CLICKHOUSE_USER"), ClickHousePassword: testenv.Get(t, "CLICKHOUSE_PASSWORD"),
			Database: db, Migrate: true, BatchWait: 100 * time.Millisecond, ChainGrace: time.Second, MetricsAddr: "off",
			Logger: testenv.Logger(t, slog.LevelInfo)})
	}()
	defer func() {
		icancel()
		if err := <-idone; err != nil && !errors.Is(err, context.Canceled) {
			t.Errorf("ingest: %v", err)
		}
	}()
	s, err := store.Open(context.Background(), store.Config{Addr: chAddr, User: testenv.Get(t, "CLICKHOUSE_USER"),
		Password: testenv.Get(t, "CLICKHOUSE_PASSWORD"), Database: db})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	deadline := time.Now().Add(90 * time.Second)
	for {
		var n uint64
		err := s.Conn().QueryRow(context.Background(), "SELECT count() FROM "+db+".events").Scan(&n)
		if err == nil && n >= want {
			break
		}
		select {
		case err := <-idone:
			t.Fatalf("ingest stopped: %v", err)
		case <-time.After(200 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d events in ClickHouse after 90s (last error %v)", n, want, err)
		}
	}

	rows, err := s.Conn().Query(context.Background(), `SELECT tenant, agent_source, event_type, count(), sum(input_tokens), sum(cost_micro_usd),
		groupUniqArray(text_mode), min(substring(runner_id, 1, 5)), uniqExact(session_id)
		FROM `+db+`.events FINAL GROUP BY tenant, agent_source, event_type ORDER BY tenant, event_type`)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for rows.Next() {
		var tenant, src, typ, runner string
		var n, tokens, cost, sessions uint64
		var modes []string
		if err := rows.Scan(&tenant, &src, &typ, &n, &tokens, &cost, &modes, &runner, &sessions); err != nil {
			t.Fatal(err)
		}
		got = append(got, fmt.Sprintf("%s %s %s n=%d tokens=%d cost=%d modes=%v runner=%s sessions=%d", tenant, src, typ, n, tokens, cost, modes, runner, sessions))
	}
	rows.Close()
	wantRows := []string{
		"acme codex agent.model_call n=4 tokens=17204 cost=0 modes=[] runner=otlp- sessions=1",
		"acme codex agent.other n=2 tokens=0 cost=0 modes=[] runner=otlp- sessions=1",
		"acme codex agent.prompt n=1 tokens=0 cost=0 modes=[store] runner=otlp- sessions=1",
		"acme codex agent.session n=1 tokens=0 cost=0 modes=[] runner=otlp- sessions=1",
		"acme codex agent.tool_decision n=1 tokens=0 cost=0 modes=[] runner=otlp- sessions=1",
		"acme codex agent.tool_result n=1 tokens=0 cost=0 modes=[store] runner=otlp- sessions=1",
		"globex claude_code agent.model_call n=3 tokens=10964 cost=26961 modes=[] runner=otlp- sessions=1",
		"globex claude_code agent.other n=1 tokens=0 cost=0 modes=[] runner=otlp- sessions=1",
		"globex claude_code agent.prompt n=1 tokens=0 cost=0 modes=[hash] runner=otlp- sessions=1",
		"globex claude_code agent.response n=1 tokens=0 cost=0 modes=[hash] runner=otlp- sessions=1",
		"globex claude_code agent.tool_decision n=2 tokens=0 cost=0 modes=[] runner=otlp- sessions=1",
		"globex claude_code agent.tool_result n=2 tokens=0 cost=0 modes=[hash] runner=otlp- sessions=1",
	}
	if diff := cmp.Diff(wantRows, got); diff != "" {
		t.Errorf("events in ClickHouse (-want +got):\n%s", diff)
	}
	// Stored text is redacted: the Codex prompt's OpenAI key is not there.
	var prompt string
	if err := s.Conn().QueryRow(context.Background(), "SELECT text FROM "+db+".events FINAL WHERE event_type = 'agent.prompt' AND tenant = 'acme'").Scan(&prompt); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(prompt, "sk-proj-") || !strings.Contains(prompt, "[REDACTED:openai_key]") {
		t.Errorf("stored prompt %q: want the key redacted", prompt)
	}
	// The ingester checked every chain: none broken.
	var breaks uint64
	if err := s.Conn().QueryRow(context.Background(), "SELECT count() FROM "+db+".chain_breaks").Scan(&breaks); err != nil || breaks != 0 {
		t.Errorf("chain breaks: %d (%v)", breaks, err)
	}
}
