package agenttest

import (
	"io"
	"net/http"
	"strings"
	"testing"
)

func post(t *testing.T, s *Server, path, body string, hdr map[string]string) string {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, "http://"+s.Addr()+path, strings.NewReader(body))
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}

// TestResponses: a Responses API turn answers the next step as a
// function_call (or a custom_tool_call) and records the tool results the
// request carries; a turn with no script left answers text.
func TestResponses(t *testing.T) {
	s, err := Start(Step{Tool: "exec_command", Input: map[string]any{"cmd": "ls"}},
		Step{Tool: "apply_patch", Custom: true, Input: map[string]any{"input": "*** Begin Patch"}})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	tools := `"tools":[{"type":"function","name":"exec_command"},{"type":"namespace","name":"mcp__x","tools":[{"name":"t"}]}]`
	out := post(t, s, "/v1/responses", `{`+tools+`,"input":[]}`, map[string]string{"Authorization": "Bearer k"})
	for _, want := range []string{"event: response.created", `"type":"function_call"`, `"name":"exec_command"`,
		`"arguments":"{\"cmd\":\"ls\"}"`, "event: response.completed"} {
		if !strings.Contains(out, want) {
			t.Errorf("first turn lacks %s:\n%s", want, out)
		}
	}
	out = post(t, s, "/v1/responses", `{`+tools+`,"input":[{"type":"function_call_output","call_id":"call_1","output":"a b"}]}`, nil)
	if !strings.Contains(out, `"type":"custom_tool_call"`) || !strings.Contains(out, `"input":"*** Begin Patch"`) {
		t.Errorf("second turn:\n%s", out)
	}
	out = post(t, s, "/v1/responses", `{`+tools+`,"input":[]}`, nil)
	if !strings.Contains(out, `"delta":"All done."`) {
		t.Errorf("third turn:\n%s", out)
	}
	if r := s.Results(); len(r) != 1 || r[0].CallID != "call_1" || r[0].Output != "a b" {
		t.Errorf("results %+v", r)
	}
	if rq := s.Requests(); len(rq) != 3 || rq[0].Auth != "Bearer k" || len(rq[0].Tools) != 3 || rq[0].Tools[2] != "mcp__x/t" {
		t.Errorf("requests %+v", rq)
	}
}

// TestMessages: a Messages API turn streams a tool_use (or answers JSON
// when not streaming), a request without tools gets text without using a
// step, and tool results are read from the messages.
func TestMessages(t *testing.T) {
	ran := false
	s, err := Start(Step{Tool: "Bash", Input: map[string]any{"command": "ls"}, Before: func() { ran = true }})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	out := post(t, s, "/v1/messages", `{"stream":false,"messages":[]}`, nil)
	if !strings.Contains(out, `"text":"Scripted session"`) {
		t.Errorf("title request: %s", out)
	}
	tools := `"tools":[{"name":"Bash"}]`
	out = post(t, s, "/v1/messages", `{"stream":true,`+tools+`,"messages":[]}`, map[string]string{"X-Api-Key": "k"})
	for _, want := range []string{"event: message_start", `"type":"tool_use"`, `"partial_json":"{\"command\":\"ls\"}"`,
		`"stop_reason":"tool_use"`, "event: message_stop"} {
		if !strings.Contains(out, want) {
			t.Errorf("tool turn lacks %s:\n%s", want, out)
		}
	}
	if !ran {
		t.Error("Before did not run")
	}
	post(t, s, "/v1/messages", `{"stream":true,`+tools+`,"messages":[{"role":"user","content":[{"type":"tool_result","tool_use_id":"toolu_2","content":[{"type":"text","text":"denied"}],"is_error":true}]}]}`, nil)
	if r := s.Results(); len(r) != 1 || r[0].CallID != "toolu_2" || r[0].Output != "denied" || !r[0].IsError {
		t.Errorf("results %+v", r)
	}
	if rq := s.Requests(); len(rq) != 3 || rq[1].Auth != "k" {
		t.Errorf("requests %+v", rq)
	}
}
