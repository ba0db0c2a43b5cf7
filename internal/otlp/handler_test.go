package otlp

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/agentaudit/agentaudit/internal/eventlog"
	"github.com/agentaudit/agentaudit/internal/events"
)

// fakeEmitter stamps events on chains like the producer and keeps them.
type fakeEmitter struct {
	mu     sync.Mutex
	chains map[events.ChainKey]*events.Chain
	got    []*events.Envelope
	fail   error
}

func (f *fakeEmitter) EmitAfterBatch(_ context.Context, es []*events.Envelope) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.fail != nil {
		return f.fail
	}
	if f.chains == nil {
		f.chains = map[events.ChainKey]*events.Chain{}
	}
	var errs []error
	for _, e := range es {
		if e.RunnerID == "" {
			e.RunnerID = "otlp-test"
		}
		c := f.chains[e.Key()]
		if c == nil {
			c = events.NewChain(e.Key())
			f.chains[e.Key()] = c
		}
		if err := c.Stamp(e); err != nil {
			errs = append(errs, fmt.Errorf("%w: %w", eventlog.ErrInvalidEvent, err))
			continue
		}
		f.got = append(f.got, e)
	}
	return errors.Join(errs...)
}

const testToken = "aao_test-token-0123456789"

func testTokens(t testing.TB) *Tokens {
	t.Helper()
	tok, err := ParseTokens([]byte(fmt.Sprintf("tenants:\n  - tenant: acme\n    token_sha256: %s\n    text: store\n    operator: alice@acme.example\n  - tenant: globex\n    token_sha256: %s\n",
		sha256Hex(testToken), sha256Hex("other-token"))))
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

func sha256Hex(s string) string { return keepText(TextHash, s).SHA256 }

func gz(t testing.TB, b []byte) []byte {
	var buf bytes.Buffer
	w := gzip.NewWriter(&buf)
	w.Write(b)
	w.Close()
	return buf.Bytes()
}

// chunked hides the body's length, as Claude Code's exporter does.
type chunked struct{ io.Reader }

func TestHandler(t *testing.T) {
	codexPB, codexJSON := fixture(t, "codex.pb"), fixture(t, "codex.json")
	claudeJSON := fixture(t, "claude.json")
	tests := []struct {
		name      string
		method    string
		path      string
		ctype     string
		cenc      string
		token     string
		body      []byte
		chunked   bool
		emitFail  error
		status    int
		events    int
		wantInRes string
	}{
		{name: "protobuf", ctype: "application/x-protobuf", body: codexPB, status: 200, events: 10},
		{name: "json", ctype: "application/json", body: codexJSON, status: 200, events: 10, wantInRes: "{}"},
		{name: "json charset gzip chunked", ctype: "application/json; charset=utf-8", cenc: "gzip", body: gz(t, claudeJSON), chunked: true, status: 200, events: 10},
		{name: "protobuf gzip", ctype: "application/x-protobuf", cenc: "gzip", body: gz(t, codexPB), status: 200, events: 10},
		{name: "wrong content type", ctype: "text/plain", body: codexJSON, status: 415},
		{name: "wrong encoding", ctype: "application/json", cenc: "br", body: codexJSON, status: 415},
		{name: "malformed json", ctype: "application/json", body: []byte(`{"resourceLogs": [`), status: 400, wantInRes: `"code":3`},
		{name: "malformed protobuf", ctype: "application/x-protobuf", body: []byte{0x0a, 0xff, 0x01}, status: 400},
		{name: "malformed gzip", ctype: "application/json", cenc: "gzip", body: []byte("not gzip"), status: 400},
		{name: "bad trace id", ctype: "application/json", body: []byte(`{"resourceLogs":[{"scopeLogs":[{"logRecords":[{"traceId":"abc"}]}]}]}`), status: 400},
		{name: "too large", ctype: "application/json", body: bytes.Repeat([]byte(" "), 70000), status: 413},
		{name: "too large once gunzipped", ctype: "application/json", cenc: "gzip", body: gz(t, bytes.Repeat([]byte(" "), 300000)), status: 413},
		{name: "no token", token: "-", ctype: "application/json", body: codexJSON, status: 401},
		{name: "wrong token", token: "aao_wrong", ctype: "application/json", body: codexJSON, status: 401},
		{name: "get", method: "GET", ctype: "application/json", status: 405},
		{name: "unknown path", path: "/v1/profiles", ctype: "application/json", body: codexJSON, status: 404},
		{name: "metrics accepted, not kept", path: "/v1/metrics", ctype: "application/json", body: []byte(`{"resourceMetrics":[]}`), status: 200},
		{name: "kafka down", ctype: "application/json", body: codexJSON, emitFail: eventlog.ErrAuditUnavailable, status: 503},
		{name: "unknown agent: partial success", ctype: "application/json",
			body:   []byte(`{"resourceLogs":[{"scopeLogs":[{"logRecords":[{"attributes":[{"key":"event.name","value":{"stringValue":"gemini.prompt"}}]}]}]}]}`),
			status: 200, wantInRes: `"rejectedLogRecords":"1"`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			em := &fakeEmitter{fail: tc.emitFail}
			h := NewHandler(em, testTokens(t), testMapper(t), WithMaxBody(64<<10, 256<<10))
			srv := httptest.NewServer(h)
			defer srv.Close()
			method, path, token := tc.method, tc.path, tc.token
			if method == "" {
				method = "POST"
			}
			if path == "" {
				path = PathLogs
			}
			var body io.Reader = bytes.NewReader(tc.body)
			if tc.chunked {
				body = chunked{body}
			}
			req, _ := http.NewRequest(method, srv.URL+path, body)
			req.Header.Set("Content-Type", tc.ctype)
			if tc.cenc != "" {
				req.Header.Set("Content-Encoding", tc.cenc)
			}
			if token == "" {
				token = testToken
			}
			if token != "-" {
				req.Header.Set("Authorization", "Bearer "+token)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			res, _ := io.ReadAll(resp.Body)
			if tc.chunked && req.ContentLength != -1 && req.ContentLength != 0 {
				t.Errorf("request had a Content-Length")
			}
			if resp.StatusCode != tc.status {
				t.Errorf("status %d, want %d: %s", resp.StatusCode, tc.status, res)
			}
			if len(em.got) != tc.events {
				t.Errorf("%d events recorded, want %d", len(em.got), tc.events)
			}
			if tc.wantInRes != "" && !strings.Contains(string(res), tc.wantInRes) {
				t.Errorf("response %q does not contain %q", res, tc.wantInRes)
			}
			for _, e := range em.got {
				if e.Tenant != "acme" {
					t.Errorf("tenant %q", e.Tenant)
				}
			}
		})
	}
}

func TestHandlerCounts(t *testing.T) {
	h := NewHandler(&fakeEmitter{}, Fixed(Tenant{Name: "acme", SessionID: "sess-1"}), testMapper(t))
	post := func(ctype string, body []byte) int {
		rec := httptest.NewRecorder()
		req := httptest.NewRequest("POST", PathLogs, bytes.NewReader(body))
		req.Header.Set("Content-Type", ctype)
		h.ServeHTTP(rec, req)
		return rec.Code
	}
	post("application/json", []byte("{"))
	post("application/json", []byte("[]"))
	post("text/plain", nil)
	post("application/x-protobuf", fixture(t, "claude.pb"))
	st := h.Stats()
	got := []int64{st.Requests.Load(), st.Malformed.Load(), st.BadContentType.Load(), st.Records.Load(), st.Events.Load()}
	if diff := cmp.Diff([]int64{4, 2, 1, 10, 10}, got); diff != "" {
		t.Errorf("requests, malformed, bad type, records, events (-want +got):\n%s", diff)
	}
}

func TestPartialSuccessProtobuf(t *testing.T) {
	h := NewHandler(&fakeEmitter{}, Fixed(Tenant{Name: "acme"}), testMapper(t))
	rec := httptest.NewRecorder()
	req := httptest.NewRequest("POST", PathLogs, strings.NewReader(`{"resourceLogs":[{"scopeLogs":[{"logRecords":[{"body":{"stringValue":"hello"}}]}]}]}`))
	req.Header.Set("Content-Type", "application/json")
	h.ServeHTTP(rec, req)
	var body struct {
		PartialSuccess struct {
			RejectedLogRecords string `json:"rejectedLogRecords"`
			ErrorMessage       string `json:"errorMessage"`
		} `json:"partialSuccess"`
	}
	if err := json.Unmarshal(rec.Body.Bytes(), &body); err != nil || body.PartialSuccess.RejectedLogRecords != "1" || body.PartialSuccess.ErrorMessage == "" {
		t.Errorf("%d %s (%v)", rec.Code, rec.Body, err)
	}
}

func TestTokens(t *testing.T) {
	for _, bad := range []string{
		"tenants: []",
		"tenants:\n  - tenant: Acme\n    token_sha256: " + sha256Hex("x"),
		"tenants:\n  - tenant: acme\n    token_sha256: abc",
		"tenants:\n  - tenant: acme\n    token_sha256: " + sha256Hex("x") + "\n    text: plain",
		"tenants:\n  - tenant: acme\n    token_sha256: " + sha256Hex("x") + "\n  - tenant: b\n    token_sha256: " + sha256Hex("x"),
		"tenants:\n  - tenant: acme\n    token: x",
	} {
		if _, err := ParseTokens([]byte(bad)); !errors.Is(err, ErrTokenFile) {
			t.Errorf("ParseTokens(%q) = %v, want ErrTokenFile", bad, err)
		}
	}
	tok := testTokens(t)
	for _, tc := range []struct {
		header string
		tenant string
	}{
		{"Bearer " + testToken, "acme"}, {"bearer other-token", "globex"}, {"Bearer nope", ""}, {"Basic " + testToken, ""}, {"", ""},
	} {
		req := httptest.NewRequest("POST", PathLogs, nil)
		req.Header.Set("Authorization", tc.header)
		got, err := tok.Authenticate(req)
		if got.Name != tc.tenant || (err != nil) != (tc.tenant == "") {
			t.Errorf("%q: %+v, %v; want tenant %q", tc.header, got, err, tc.tenant)
		}
	}
	token, sum, err := GenerateToken()
	if err != nil || sha256Hex(token) != sum || !strings.HasPrefix(token, "aao_") {
		t.Errorf("GenerateToken: %q %q %v", token, sum, err)
	}
}
