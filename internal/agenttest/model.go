// Package agenttest is a scripted model server for running the real agent
// CLIs (Codex, Claude Code) without a real model: it speaks the OpenAI
// Responses API and the Anthropic Messages API over SSE on 127.0.0.1 and
// answers each turn with the next step of a script.
package agenttest

import (
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"
)

// Step is one model turn: a tool call (Tool and Input) or, with Tool
// empty, a final text answer.
type Step struct {
	Tool  string
	Input map[string]any
	Text  string
	// Custom sends a freeform tool call (Responses custom_tool_call, as
	// Codex's apply_patch takes) whose input is Input["input"].
	Custom bool
	// Before runs when the step is about to be answered.
	Before func()
}

// ToolResult is a tool's result as the agent sent it back to the model.
type ToolResult struct {
	CallID  string
	Output  string
	IsError bool
}

// Request is what the server saw of one model request.
type Request struct {
	API      string // "responses" or "messages"
	Path     string
	Auth     string // the Authorization or x-api-key header
	Tools    []string
	Results  []ToolResult // tool results carried by this request
	Answered string       // the step's tool, or "text"
}

// Server is the scripted model.
type Server struct {
	ln  net.Listener
	srv *http.Server

	mu       sync.Mutex
	steps    []Step
	requests []Request
	seen     map[string]bool // tool results already reported
	results  []ToolResult
	n        int
	toolDefs map[string]json.RawMessage
}

// Start listens on 127.0.0.1 and serves steps in order.
func Start(steps ...Step) (*Server, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	s := &Server{ln: ln, steps: steps, seen: map[string]bool{}, toolDefs: map[string]json.RawMessage{}}
	s.srv = &http.Server{Handler: s, ReadHeaderTimeout: 10 * time.Second}
	go s.srv.Serve(ln)
	return s, nil
}

// Addr is host:port.
func (s *Server) Addr() string { return s.ln.Addr().String() }

// Close stops the server.
func (s *Server) Close() error { return s.srv.Close() }

// Push appends steps to the script.
func (s *Server) Push(steps ...Step) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.steps = append(s.steps, steps...)
}

// Requests returns what the server saw, in order.
func (s *Server) Requests() []Request {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Request(nil), s.requests...)
}

// Results returns every tool result the agents sent back, in order.
func (s *Server) Results() []ToolResult {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]ToolResult(nil), s.results...)
}

// ToolDef returns the definition the agent offered for a tool (its
// parameters schema), to see how the agent names its arguments.
func (s *Server) ToolDef(name string) json.RawMessage {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.toolDefs[name]
}

// ServeHTTP implements http.Handler.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(io.LimitReader(r.Body, 64<<20))
	switch {
	case r.Method == http.MethodPost && strings.HasSuffix(r.URL.Path, "/responses"):
		s.responses(w, r, body)
	case r.Method == http.MethodPost && strings.HasSuffix(r.URL.Path, "/messages"):
		s.messages(w, r, body)
	case strings.HasSuffix(r.URL.Path, "/count_tokens"):
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, `{"input_tokens":10}`)
	case strings.HasSuffix(r.URL.Path, "/models"):
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, `{"data":[],"models":[]}`)
	default:
		// Analytics and whatever else the CLIs send on the side.
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, `{}`)
	}
}

// next pops the next step for a request carrying tools.
func (s *Server) next(req Request) (Step, int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, res := range req.Results {
		if !s.seen[res.CallID] {
			s.seen[res.CallID] = true
			s.results = append(s.results, res)
		}
	}
	s.n++
	st := Step{Text: "All done."}
	if len(req.Tools) == 0 {
		st = Step{Text: "Scripted session"}
	} else if len(s.steps) > 0 {
		st, s.steps = s.steps[0], s.steps[1:]
	}
	req.Answered = orText(st.Tool)
	s.requests = append(s.requests, req)
	if st.Before != nil {
		// Outside the lock: it may wait.
		s.mu.Unlock()
		st.Before()
		s.mu.Lock()
	}
	return st, s.n
}

func orText(tool string) string {
	if tool == "" {
		return "text"
	}
	return tool
}

func sse(w http.ResponseWriter, event string, data any) {
	b, _ := json.Marshal(data)
	fmt.Fprintf(w, "event: %s\ndata: %s\n\n", event, b)
}

// responses answers an OpenAI Responses API request (Codex).
func (s *Server) responses(w http.ResponseWriter, r *http.Request, body []byte) {
	var in struct {
		Tools []json.RawMessage `json:"tools"`
		Input []json.RawMessage `json:"input"`
	}
	_ = json.Unmarshal(body, &in)
	req := Request{API: "responses", Path: r.URL.Path, Auth: r.Header.Get("Authorization")}
	s.collectTools(in.Tools, &req)
	for _, item := range in.Input {
		var it struct {
			Type   string          `json:"type"`
			CallID string          `json:"call_id"`
			Output json.RawMessage `json:"output"`
		}
		if json.Unmarshal(item, &it) == nil && (it.Type == "function_call_output" || it.Type == "custom_tool_call_output") {
			req.Results = append(req.Results, ToolResult{CallID: it.CallID, Output: textOf(it.Output)})
		}
	}
	st, n := s.next(req)
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("Cache-Control", "no-cache")
	respID := fmt.Sprintf("resp_%d", n)
	sse(w, "response.created", map[string]any{"type": "response.created",
		"response": map[string]any{"id": respID, "object": "response", "status": "in_progress", "output": []any{}}})
	var item map[string]any
	if st.Tool != "" {
		args, _ := json.Marshal(st.Input)
		item = map[string]any{"type": "function_call", "id": fmt.Sprintf("fc_%d", n), "call_id": fmt.Sprintf("call_%d", n),
			"name": st.Tool, "arguments": string(args), "status": "completed"}
		if st.Custom {
			input, _ := st.Input["input"].(string)
			item = map[string]any{"type": "custom_tool_call", "id": fmt.Sprintf("ctc_%d", n), "call_id": fmt.Sprintf("call_%d", n),
				"name": st.Tool, "input": input, "status": "completed"}
		}
		added := map[string]any{}
		for k, v := range item {
			added[k] = v
		}
		added["status"] = "in_progress"
		if !st.Custom {
			added["arguments"] = ""
		}
		sse(w, "response.output_item.added", map[string]any{"type": "response.output_item.added", "output_index": 0, "item": added})
	} else {
		msgID := fmt.Sprintf("msg_%d", n)
		sse(w, "response.output_item.added", map[string]any{"type": "response.output_item.added", "output_index": 0,
			"item": map[string]any{"type": "message", "id": msgID, "role": "assistant", "status": "in_progress", "content": []any{}}})
		sse(w, "response.output_text.delta", map[string]any{"type": "response.output_text.delta", "item_id": msgID,
			"output_index": 0, "content_index": 0, "delta": st.Text})
		item = map[string]any{"type": "message", "id": msgID, "role": "assistant", "status": "completed",
			"content": []any{map[string]any{"type": "output_text", "text": st.Text, "annotations": []any{}}}}
	}
	sse(w, "response.output_item.done", map[string]any{"type": "response.output_item.done", "output_index": 0, "item": item})
	sse(w, "response.completed", map[string]any{"type": "response.completed", "response": map[string]any{
		"id": respID, "object": "response", "status": "completed", "output": []any{item},
		"usage": map[string]any{"input_tokens": 100, "output_tokens": 10, "total_tokens": 110,
			"input_tokens_details": map[string]any{"cached_tokens": 0}, "output_tokens_details": map[string]any{"reasoning_tokens": 0}}}})
}

// messages answers an Anthropic Messages API request (Claude Code).
func (s *Server) messages(w http.ResponseWriter, r *http.Request, body []byte) {
	var in struct {
		Stream   bool              `json:"stream"`
		Model    string            `json:"model"`
		Tools    []json.RawMessage `json:"tools"`
		Messages []struct {
			Content json.RawMessage `json:"content"`
		} `json:"messages"`
	}
	_ = json.Unmarshal(body, &in)
	req := Request{API: "messages", Path: r.URL.Path, Auth: r.Header.Get("X-Api-Key")}
	if req.Auth == "" {
		req.Auth = r.Header.Get("Authorization")
	}
	s.collectTools(in.Tools, &req)
	for _, m := range in.Messages {
		var blocks []struct {
			Type      string          `json:"type"`
			ToolUseID string          `json:"tool_use_id"`
			Content   json.RawMessage `json:"content"`
			IsError   bool            `json:"is_error"`
		}
		if json.Unmarshal(m.Content, &blocks) != nil {
			continue
		}
		for _, b := range blocks {
			if b.Type == "tool_result" {
				req.Results = append(req.Results, ToolResult{CallID: b.ToolUseID, Output: textOf(b.Content), IsError: b.IsError})
			}
		}
	}
	st, n := s.next(req)
	model := orDefault(in.Model, "claude-scripted")
	msgID := fmt.Sprintf("msg_%d", n)
	var block map[string]any
	stop := "end_turn"
	if st.Tool != "" {
		block = map[string]any{"type": "tool_use", "id": fmt.Sprintf("toolu_%d", n), "name": st.Tool, "input": st.Input}
		stop = "tool_use"
	} else {
		block = map[string]any{"type": "text", "text": st.Text}
	}
	usage := map[string]any{"input_tokens": 100, "output_tokens": 10, "cache_creation_input_tokens": 0, "cache_read_input_tokens": 0}
	if !in.Stream {
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(map[string]any{"id": msgID, "type": "message", "role": "assistant", "model": model,
			"content": []any{block}, "stop_reason": stop, "stop_sequence": nil, "usage": usage})
		return
	}
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("Cache-Control", "no-cache")
	sse(w, "message_start", map[string]any{"type": "message_start", "message": map[string]any{"id": msgID, "type": "message",
		"role": "assistant", "model": model, "content": []any{}, "stop_reason": nil, "stop_sequence": nil, "usage": usage}})
	if st.Tool != "" {
		args, _ := json.Marshal(st.Input)
		start := map[string]any{"type": "tool_use", "id": block["id"], "name": st.Tool, "input": map[string]any{}}
		sse(w, "content_block_start", map[string]any{"type": "content_block_start", "index": 0, "content_block": start})
		sse(w, "content_block_delta", map[string]any{"type": "content_block_delta", "index": 0,
			"delta": map[string]any{"type": "input_json_delta", "partial_json": string(args)}})
	} else {
		sse(w, "content_block_start", map[string]any{"type": "content_block_start", "index": 0,
			"content_block": map[string]any{"type": "text", "text": ""}})
		sse(w, "content_block_delta", map[string]any{"type": "content_block_delta", "index": 0,
			"delta": map[string]any{"type": "text_delta", "text": st.Text}})
	}
	sse(w, "content_block_stop", map[string]any{"type": "content_block_stop", "index": 0})
	sse(w, "message_delta", map[string]any{"type": "message_delta", "delta": map[string]any{"stop_reason": stop, "stop_sequence": nil},
		"usage": map[string]any{"output_tokens": 10}})
	sse(w, "message_stop", map[string]any{"type": "message_stop"})
}

func (s *Server) collectTools(tools []json.RawMessage, req *Request) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, t := range tools {
		var d struct {
			Name  string            `json:"name"`
			Type  string            `json:"type"`
			Tools []json.RawMessage `json:"tools"`
		}
		if json.Unmarshal(t, &d) != nil {
			continue
		}
		if d.Name != "" {
			req.Tools = append(req.Tools, d.Name)
			s.toolDefs[d.Name] = t
		}
		for _, sub := range d.Tools {
			var sd struct {
				Name string `json:"name"`
			}
			if json.Unmarshal(sub, &sd) == nil && sd.Name != "" {
				req.Tools = append(req.Tools, d.Name+"/"+sd.Name)
				s.toolDefs[sd.Name] = sub
			}
		}
	}
}

// textOf flattens a tool result's content: a string, or blocks with text.
func textOf(raw json.RawMessage) string {
	var s string
	if json.Unmarshal(raw, &s) == nil {
		return s
	}
	var blocks []struct {
		Text string `json:"text"`
	}
	if json.Unmarshal(raw, &blocks) == nil {
		var b strings.Builder
		for _, bl := range blocks {
			b.WriteString(bl.Text)
		}
		return b.String()
	}
	return string(raw)
}

func orDefault(s, d string) string {
	if s == "" {
		return d
	}
	return s
}
