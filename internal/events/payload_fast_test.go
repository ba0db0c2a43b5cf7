package events

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// sameAsDecodePayload checks that DecodePayloadFast agrees with
// DecodePayload (encoding/json) on env: same payload, or both an error.
func sameAsDecodePayload(t *testing.T, env *Envelope) {
	t.Helper()
	want, werr := env.DecodePayload()
	got, gerr := env.DecodePayloadFast()
	if (werr != nil) != (gerr != nil) {
		t.Fatalf("%s %s: DecodePayload error %v, DecodePayloadFast error %v", env.EventType, env.Payload, werr, gerr)
	}
	if werr != nil {
		return
	}
	if d := cmp.Diff(want, got); d != "" {
		t.Fatalf("%s %s (-encoding/json +fast):\n%s", env.EventType, env.Payload, d)
	}
}

func TestDecodePayloadFastExamples(t *testing.T) {
	files, _ := filepath.Glob(filepath.Join(examplesDir, "valid", "*.json"))
	if len(files) == 0 {
		t.Fatal("no examples")
	}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		env, err := Decode(b)
		if err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		sameAsDecodePayload(t, env)
	}
}

// TestDecodePayloadFastTakesFastPath guards the point of DecodePayloadFast.
// Falling back to encoding/json is always correct, so without this test the
// fast path could stop being taken with every other test still passing:
// each canonical example of a hot-path type must be read by the fast
// decoder, and every hot-path type must have one.
func TestDecodePayloadFastTakesFastPath(t *testing.T) {
	hot := map[string]int{TypeToolCallRequested: 0, TypePolicyDecision: 0, TypeToolCallCompleted: 0, TypeNetEgress: 0, TypeProcessExec: 0}
	for name, b := range readExamples(t, "valid") {
		env, err := Decode(b)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		_, fast := env.decodeFast()
		if _, ok := hot[env.EventType]; !ok {
			if fast {
				t.Errorf("%s: %s is not a hot-path type, yet the fast path read it", name, env.EventType)
			}
			continue
		}
		hot[env.EventType]++
		if !fast {
			t.Errorf("%s: DecodePayloadFast fell back to encoding/json on a canonical %s", name, env.EventType)
		}
	}
	for typ, n := range hot {
		if n == 0 {
			t.Errorf("no canonical example of %s under schemas/examples/valid", typ)
		}
	}
}

func TestDecodePayloadFastEdges(t *testing.T) {
	for _, tc := range []struct{ typ, payload string }{
		{TypeToolCallRequested, `{"tool_name":"bash","arguments":{"command":"ls","argv":[],"env_keys":["A","B\u00e9"]},"arguments_sha256":"x","arguments_truncated":false}`},
		{TypeToolCallRequested, `{"tool_name":"bash","arguments":{"content_length":0},"arguments_sha256":"x","arguments_truncated":true}`},
		{TypeToolCallRequested, `{"Tool_Name":"bash","arguments":{}}`},                                                // case-folded key
		{TypeToolCallRequested, `{"tool_name":null,"arguments":{"argv":null}}`},                                       // nulls keep zero values
		{TypeToolCallRequested, `{"tool_name":"a","tool_name":"b","arguments":{"path":"p"},"arguments":{"cwd":"c"}}`}, // duplicates merge
		{TypeToolCallRequested, `{"tool_n\u0061me":"esc\"aped\n","arguments":{"argv":["a\tb","\ud83d\ude00"]}}`},
		{TypeToolCallRequested, `{"tool_name":"bash","extra":1}`},
		{TypeToolCallRequested, `{"tool_name":1}`},
		{TypeToolCallRequested, `[]`},
		{TypeToolCallRequested, `{"tool_name":"\ud800"}`}, // lone surrogate: encoding/json substitutes
		{TypeToolCallRequested, "{\"tool_name\":\"\xff\"}"},
		{TypeToolCallRequested, `{"arguments":{"timeout_ms":18446744073709551615,"content_length":-0}}`},
		{TypeToolCallRequested, `{"tool_name":"shell","arguments":{},"client_meta":{"call_id":"call_1","tool_use_id":"toolu_1","session_id":"s","thread_id":"t","turn_id":"u","traceparent":"00-a-b-01"}}`},
		{TypeToolCallRequested, `{"tool_name":"shell","client_meta":null}`},
		{TypeToolCallRequested, `{"client_meta":{"call_id":"a"},"client_meta":{"turn_id":"b"}}`}, // duplicates merge
		{TypeToolCallRequested, `{"client_meta":{"callId":"a"}}`},
		{TypeToolCallRequested, `{"client_meta":{"call_id":1}}`},
		{TypePolicyDecision, `{"decision":"allow","reason_code":"allowlisted","approval_mode":"none","eval_us":12}`},
		{TypePolicyDecision, `{"decision":"deny","eval_us":1.5}`},
		{TypePolicyDecision, `{"decision":"deny","eval_us":-1}`},
		{TypeToolCallCompleted, `{"exit_code":-1,"duration_ms":5,"timed_out":true,"stdout":{"length":3,"sha256":"s","text":"abc","truncated":false},"stderr":{"length":0,"sha256":"s","text":"","truncated":false}}`},
		{TypeToolCallCompleted, `{"exit_code":9223372036854775807,"stdout":{"length":1e3}}`},
		{TypeToolCallCompleted, `{"exit_code":-9223372036854775809}`},
		{TypeNetEgress, `{"phase":"decision","host":"h","port":443,"decision":"deny","reason_code":"default_deny","bytes_sent":0,"bytes_received":0,"duration_ms":0}`},
		{TypeNetEgress, `{"port":65536}`},
		{TypeNetEgress, `{"port":-0,"status_code":65535}`},
		{TypeNetEgress, `{"port":443 }  `},
		{TypeNetEgress, `{"host":"a"} x`},
		{TypeToolCallCompleted, `{"exit_code":-1,"signal":9,"rusage":{"user_ms":1,"system_ms":2,"max_rss_kb":3},"leftovers_killed":2}`},
		{TypeToolCallCompleted, `{"rusage":{"user_ms":1},"rusage":{"system_ms":2}}`}, // duplicates merge into one struct
		{TypeToolCallCompleted, `{"rusage":null,"signal":-1}`},
		{TypeToolCallCompleted, `{"rusage":{"cpu_ms":1}}`},
		{TypeToolCallCompleted, `{"signal":9223372036854775808}`},
		{TypeProcessExec, `{"argv":["git","push"],"argv_truncated":false,"background":false,"cwd":"/workspace","decision":"deny","exe":"/usr/bin/git","pid":37,"ppid":31,"reason_code":"denied_by_rule","root":false,"rule_id":"exec/x"}`},
		{TypeProcessExec, `{"argv":[],"pid":1,"ppid":0,"root":true}`},
		{TypeProcessExec, `{"argv":null,"pid":1}`},
		{TypeProcessExec, `{"argv":["a\u00e9\n","\ud83d\ude00"],"argv":["b"]}`},
		{TypeProcessExec, `{"pid":1.0}`},
		{TypeProcessExec, `{"pid":"1"}`},
		{TypeProcessExec, `{"Pid":1,"PID":2}`},
		{TypeProcessExec, `{"background":1}`},
		{TypeSessionStarted, `{"workspace":"/w"}`}, // not a fast type
	} {
		t.Run(strings.ReplaceAll(tc.payload, "/", "_"), func(t *testing.T) {
			sameAsDecodePayload(t, &Envelope{EventType: tc.typ, Payload: []byte(tc.payload)})
		})
	}
}

func FuzzDecodePayloadFast(f *testing.F) {
	files, _ := filepath.Glob(filepath.Join(examplesDir, "valid", "*.json"))
	for _, file := range files {
		b, _ := os.ReadFile(file)
		if env, err := Decode(b); err == nil {
			f.Add(uint8(0), []byte(env.Payload))
		}
	}
	f.Add(uint8(1), []byte(`{"decision":"allow","eval_us":-0}`))
	f.Add(uint8(2), []byte(`{"exit_code":-1,"stdout":{"length":1}}`))
	f.Add(uint8(3), []byte(`{"port":80,"Port":81}`))
	f.Add(uint8(2), []byte(`{"signal":15,"rusage":{"user_ms":1,"max_rss_kb":-0},"leftovers_killed":1}`))
	f.Add(uint8(4), []byte(`{"pid":2,"ppid":1,"argv":["sh","-c","x\"y"],"exe":"/bin/sh","root":true,"background":false}`))
	types := []string{TypeToolCallRequested, TypePolicyDecision, TypeToolCallCompleted, TypeNetEgress, TypeProcessExec}
	f.Fuzz(func(t *testing.T, which uint8, payload []byte) {
		for i, typ := range types {
			if which != 0 && int(which)%len(types) != i {
				continue
			}
			sameAsDecodePayload(t, &Envelope{EventType: typ, Payload: payload})
		}
	})
}
