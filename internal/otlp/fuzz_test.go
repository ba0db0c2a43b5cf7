package otlp

import (
	"testing"
	"unicode/utf8"

	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/plog"
	logspb "go.opentelemetry.io/proto/otlp/logs/v1"

	"google.golang.org/protobuf/proto"

	"github.com/agentaudit/agentaudit/internal/events"
)

// stampAll puts every mapped event on a chain, which validates it as the
// producer would: the mapper may reject a record, never emit an invalid
// event.
func stampAll(t *testing.T, envs []*events.Envelope) {
	chains := map[events.ChainKey]*events.Chain{}
	for _, e := range envs {
		e.RunnerID = "otlp-fuzz"
		c := chains[e.Key()]
		if c == nil {
			c = events.NewChain(e.Key())
			chains[e.Key()] = c
		}
		if err := c.Stamp(e); err != nil {
			t.Fatalf("mapped event does not validate: %v\n%s", err, e.Payload)
		}
	}
}

func FuzzDecodeLogs(f *testing.F) {
	// Small seeds, a few records of each agent: the fuzzer minimises every
	// new input, which takes minutes on the whole 30 KB fixtures.
	for _, build := range []func() *logspb.LogsData{codexFixture, claudeFixture} {
		for _, i := range []int{1, 5, 7, 9} {
			ld := build()
			sl := ld.ResourceLogs[0].ScopeLogs[0]
			sl.LogRecords = sl.LogRecords[i : i+1]
			pb, err := proto.Marshal(ld)
			if err != nil {
				f.Fatal(err)
			}
			f.Add(pb, false)
			f.Add(otlpJSON(f, ld), true) // hex ids, as pdata reads them
		}
	}
	f.Add([]byte(`{"resourceLogs":[{"scopeLogs":[{"logRecords":[{"traceId":"4bf92f3577b34da6a3ce929d0e0e4736","body":{"stringValue":"claude_code.x"}}]}]}]}`), true)
	f.Add([]byte{0x0a, 0x02, 0x12, 0x00}, false)
	m := testMapper(f)
	f.Fuzz(func(t *testing.T, body []byte, isJSON bool) {
		enc := EncodingProtobuf
		if isJSON {
			enc = EncodingJSON
		}
		ld, err := DecodeLogs(body, enc)
		if err != nil {
			return
		}
		envs, res := m.Map(ld, Tenant{Name: "acme", Text: TextStore})
		if res.Mapped != len(envs) || res.Mapped+res.Rejected+res.Skipped != res.Records {
			t.Fatalf("result %+v for %d events", res, len(envs))
		}
		stampAll(t, envs)
	})
}

func FuzzMapRecord(f *testing.F) {
	f.Add("codex.tool_result", "arguments", `{"cmd":"rm -rf /"}`, "call_id", "c1", int64(5), uint64(0))
	f.Add("claude_code.tool_result", "tool_input", `{"file_path":"/workspace/.git/hooks/x"}`, "tool_use_id", "toolu 1", int64(-1), uint64(1<<63))
	f.Add("claude_code.user_prompt", "prompt", "sk-ant-api03-AbCdEfGhIjKlMnOpQrStUvWxYz012345 \xff", "session.id", "-", int64(0), uint64(1))
	f.Add("codex.sse_event", "event.kind", "response.completed", "input_token_count", "1e300", int64(1<<62), uint64(0))
	f.Add("codex.conversation_starts", "mcp_servers", ",,a,,b", "conversation.id", "x y", int64(0), uint64(0))
	f.Add("claude_code.future_event", "k", "v", "k2", "v2", int64(2), uint64(3))
	m := testMapper(f)
	f.Fuzz(func(t *testing.T, name, k1, v1, k2, v2 string, n int64, ts uint64) {
		// Built with pdata's API, not through the wire: protobuf-go will
		// not marshal invalid UTF-8, which the receiver does take in. A
		// key given twice keeps its first value, as a lookup would.
		ld := plog.NewLogs()
		lr := ld.ResourceLogs().AppendEmpty().ScopeLogs().AppendEmpty().LogRecords().AppendEmpty()
		lr.SetTimestamp(pcommon.Timestamp(ts))
		lr.SetObservedTimestamp(pcommon.Timestamp(ts / 2))
		at := lr.Attributes()
		for _, kv := range [][2]string{{"event.name", name}, {k1, v1}, {k2, v2}} {
			if _, ok := at.Get(kv[0]); !ok {
				at.PutStr(kv[0], kv[1])
			}
		}
		for _, k := range []string{"duration_ms", "cost_usd", "tool_name"} {
			if _, ok := at.Get(k); ok {
				continue
			}
			switch k {
			case "duration_ms":
				at.PutInt(k, n)
			case "cost_usd":
				at.PutDouble(k, float64(n)/7)
			default:
				at.PutStr(k, v2)
			}
		}
		for _, mode := range []TextMode{TextStore, TextHash, TextDrop} {
			envs, res := m.Map(ld, Tenant{Name: "acme", Text: mode, Operator: v1})
			if res.Records != 1 || len(envs) != res.Mapped {
				t.Fatalf("result %+v", res)
			}
			stampAll(t, envs)
		}
	})
}

func FuzzRedact(f *testing.F) {
	for _, s := range []string{"password=hunter22", "Bearer abcdefghijklmnopqrstu", "-----BEGIN PRIVATE KEY-----\nx", "sk-ant-" + "a", "a://b:c@"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		out, n := Redact(s)
		if n == 0 && out != s {
			t.Fatalf("changed %q to %q without counting", s, out)
		}
		if utf8.ValidString(s) && !utf8.ValidString(out) {
			t.Fatalf("invalid UTF-8 from %q", s)
		}
		again, _ := Redact(out)
		if again != out {
			t.Fatalf("not idempotent: %q -> %q -> %q", s, out, again)
		}
		// Redact does not scan text shorter than minSecret: no pattern
		// may match any.
		if len(s) < minSecret {
			for _, p := range secretPatterns {
				if p.re.MatchString(s) {
					t.Fatalf("%s matches %q, shorter than minSecret", p.kind, s)
				}
			}
		}
	})
}
