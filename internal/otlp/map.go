package otlp

import (
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"

	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/plog"

	"github.com/agentaudit/agentaudit/internal/events"
)

// Tenant is who telemetry is received for and how it is kept.
type Tenant struct {
	// Name is the tenant written on every event.
	Name string
	// Text is how prompt, response, argument and output text is kept
	// (default TextHash).
	Text TextMode
	// Operator names the person or service account the agents run for.
	Operator string
	// SessionID, when set, puts every event into this session (the
	// runner's session, for a receiver mounted on its session socket).
	// When empty, each agent conversation is its own session, named by
	// the agent's conversation id.
	SessionID string
}

// Judge says what this deployment's tool-call policy decides about a
// command or file write an agent made on its own. ok is false when it
// has nothing to say (not a tool the policy judges).
type Judge interface {
	Judge(call AgentCall) (p events.AgentPolicy, ok bool)
}

// AgentCall is a tool call as an agent reported it after the fact.
type AgentCall struct {
	Tool    string // the agent's tool name (Bash, exec_command, Write, …)
	Command string // the shell command, when it ran one
	Path    string // the file a file tool wrote, when it wrote one
}

// CallLinker finds the runner's tool_call_id for the agent's call id of a
// call that went through the runner (the MCP _meta callId or toolUseId, or
// the hook's tool_use_id).
type CallLinker interface {
	ToolCallID(agentCallID string) (toolCallID string, ok bool)
}

// Mapper maps OTLP log records of Codex and Claude Code into agent.*
// events. It is safe for concurrent use.
type Mapper struct {
	ids   *events.IDGen
	judge Judge
	link  CallLinker
	now   func() time.Time
}

// MapperOption configures a Mapper.
type MapperOption func(*Mapper)

// WithJudge records, on agent tool events, what the policy says.
func WithJudge(j Judge) MapperOption { return func(m *Mapper) { m.judge = j } }

// WithCallLinker links agent tool events to the runner's tool calls.
func WithCallLinker(l CallLinker) MapperOption { return func(m *Mapper) { m.link = l } }

// WithClock sets the clock for records that carry no time.
func WithClock(now func() time.Time) MapperOption { return func(m *Mapper) { m.now = now } }

// NewMapper returns a Mapper drawing event ids from ids.
func NewMapper(ids *events.IDGen, opts ...MapperOption) *Mapper {
	m := &Mapper{ids: ids, now: time.Now}
	for _, o := range opts {
		o(m)
	}
	return m
}

// Result counts what Map did with the records of one request.
type Result struct {
	Records  int // log records in the request
	Mapped   int // records that became events
	Skipped  int // records deliberately not kept (Codex's per-chunk stream events)
	Rejected int // records refused: not from a known agent, or invalid
	// Reason is the first rejection's reason, for the partial-success
	// answer.
	Reason string
}

// Map returns the events of every record it can map, in request order.
// Records of an unknown agent are rejected and counted. Every field is
// bounded to its schema here, and the producer validates each event when
// it stamps it (the handler counts a refused one as rejected), so the
// schema check is not paid twice on the hot path; the fuzz targets hold
// the mapper to producing only valid events.
func (m *Mapper) Map(ld plog.Logs, t Tenant) ([]*events.Envelope, Result) {
	out := make([]*events.Envelope, 0, ld.LogRecordCount())
	var res Result
	for _, rl := range ld.ResourceLogs().All() {
		resAttrs := rl.Resource().Attributes()
		conv := requestConversation(rl)
		for _, sl := range rl.ScopeLogs().All() {
			for _, lr := range sl.LogRecords().All() {
				res.Records++
				env, err := m.record(lr, attrs{rec: lr.Attributes(), res: resAttrs}, t, conv)
				switch {
				case errors.Is(err, errSkip):
					res.Skipped++
				case err != nil:
					res.Rejected++
					if res.Reason == "" {
						res.Reason = err.Error()
					}
				default:
					res.Mapped++
					out = append(out, env)
				}
			}
		}
	}
	return out, res
}

// errSkip marks a record that is deliberately not kept.
var errSkip = errors.New("skipped")

// ErrUnknownAgent: a record whose event name is neither codex.* nor
// claude_code.*.
var ErrUnknownAgent = errors.New("otlp: not a Codex or Claude Code event")

const (
	prefixCodex  = "codex."
	prefixClaude = "claude_code."
)

// eventName finds the record's event name: the OTLP event_name field,
// Codex's event.name attribute, or Claude Code's body (whose event.name
// attribute lacks the prefix).
func eventName(lr plog.LogRecord, a attrs) string {
	if n := lr.EventName(); strings.HasPrefix(n, prefixCodex) || strings.HasPrefix(n, prefixClaude) {
		return n
	}
	n := a.str("event.name")
	if strings.HasPrefix(n, prefixCodex) || strings.HasPrefix(n, prefixClaude) {
		return n
	}
	if b := lr.Body().Str(); strings.HasPrefix(b, prefixCodex) || strings.HasPrefix(b, prefixClaude) {
		return b
	}
	// A bare event.name ("user_prompt") from Claude Code's service.
	if n != "" && !strings.Contains(n, ".") && strings.Contains(a.str("service.name"), "claude") {
		return prefixClaude + n
	}
	return ""
}

// requestConversation is the first conversation id among a resource's
// records: the conversation of a record that names none (a plain log line)
// sent along with them.
func requestConversation(rl plog.ResourceLogs) string {
	for _, sl := range rl.ScopeLogs().All() {
		for _, lr := range sl.LogRecords().All() {
			if c := (attrs{rec: lr.Attributes()}).str("conversation.id", "session.id"); c != "" {
				return c
			}
		}
	}
	return ""
}

func (m *Mapper) record(lr plog.LogRecord, a attrs, t Tenant, reqConv string) (*events.Envelope, error) {
	name := eventName(lr, a)
	unnamed := false
	if name == "" && !a.has("event.name") {
		// A plain log line of a known agent (Codex logs "flushing OTEL
		// metrics" with no event name): kept as <agent>.log. A record
		// naming an event of another program is refused.
		switch svc := strings.ToLower(attrs{res: a.res}.str("service.name")); {
		case strings.HasPrefix(svc, "codex"):
			name, unnamed = prefixCodex+"log", true
		case strings.Contains(svc, "claude"):
			name, unnamed = prefixClaude+"log", true
		}
	}
	var src, short, agentName string
	switch {
	case strings.HasPrefix(name, prefixCodex):
		src, short, agentName = events.AgentSourceCodex, strings.TrimPrefix(name, prefixCodex), "codex"
	case strings.HasPrefix(name, prefixClaude):
		src, short, agentName = events.AgentSourceClaudeCode, strings.TrimPrefix(name, prefixClaude), "claude-code"
	default:
		return nil, ErrUnknownAgent
	}
	mode := t.Text
	if mode == "" {
		mode = TextHash
	}
	c := common{
		src: src, name: toolName(name), op: bounded(t.Operator, 256), seq: a.uint("event.sequence"),
		conv:   agentID(orDefault(a.str("conversation.id", "session.id"), reqConv)),
		prompt: agentID(a.str("prompt.id", "turn.id", "turn_id")),
	}
	var p events.Payload
	var callID string
	switch src + "/" + short {
	case "codex/conversation_starts":
		p = &events.AgentSession{Model: bounded(a.str("model"), 128), Provider: bounded(a.str("provider_name", "provider"), 128),
			ApprovalPolicy: bounded(a.str("approval_policy"), 64), SandboxPolicy: bounded(a.str("sandbox_policy"), 128),
			ReasoningEffort: bounded(a.str("reasoning_effort"), 32), Originator: bounded(a.str("originator"), 128),
			MCPServers: boundList(a.list("mcp_servers"), 64, 128)}
	case "codex/user_prompt", "claude_code/user_prompt":
		pr := &events.AgentPrompt{Length: a.uint("prompt_length")}
		if text := a.str("prompt"); text != "" && text != "[REDACTED]" {
			pr.Text = keepText(mode, text)
			if pr.Length == 0 {
				pr.Length = uint64(len(text))
			}
		}
		p = pr
	case "codex/api_request":
		mc := &events.AgentModelCall{Kind: events.ModelCallRequest, Model: bounded(a.str("model"), 128),
			DurationMS: a.uint("duration_ms"), Status: bounded(a.str("http.response.status_code", "status", "status_code"), 64),
			Endpoint: bounded(a.str("endpoint", "url.path", "http.url"), 512), Attempt: min(a.uint("attempt"), 1000),
			Error: redactBounded(a.str("error.message", "error"), 1024)}
		if mc.Error != "" {
			mc.Kind = events.ModelCallError
		}
		p = mc
	case "codex/sse_event":
		// Codex sends one sse_event per stream event (created, deltas,
		// output items, completed) and, for a completed response, a second
		// one carrying the token counts: only that one and failures are
		// kept.
		errMsg := a.str("error.message", "error")
		if !a.has("input_token_count", "output_token_count") && errMsg == "" {
			return nil, errSkip
		}
		mc := &events.AgentModelCall{Kind: events.ModelCallUsage, Model: bounded(a.str("model"), 128),
			InputTokens: a.uint("input_token_count"), OutputTokens: a.uint("output_token_count"),
			CacheReadTokens: a.uint("cached_token_count"), CacheCreationTokens: a.uint("cache_write_token_count"),
			ReasoningTokens: a.uint("reasoning_token_count"), ToolTokens: a.uint("tool_token_count"),
			DurationMS: a.uint("duration_ms"), Error: redactBounded(errMsg, 1024)}
		if errMsg != "" && mc.InputTokens+mc.OutputTokens == 0 {
			mc.Kind = events.ModelCallError
		}
		p = mc
	case "claude_code/api_request":
		p = &events.AgentModelCall{Kind: events.ModelCallCall, Model: bounded(a.str("model"), 128),
			InputTokens: a.uint("input_tokens"), OutputTokens: a.uint("output_tokens"),
			CacheReadTokens: a.uint("cache_read_tokens"), CacheCreationTokens: a.uint("cache_creation_tokens"),
			CostMicroUSD: microUSD(a), DurationMS: a.uint("duration_ms"), Attempt: min(a.uint("attempt"), 1000)}
	case "claude_code/api_error":
		p = &events.AgentModelCall{Kind: events.ModelCallError, Model: bounded(a.str("model"), 128),
			Status: bounded(a.str("status_code", "status"), 64), DurationMS: a.uint("duration_ms"),
			Attempt: min(a.uint("attempt"), 1000), Error: redactBounded(a.str("error", "error.message"), 1024)}
	case "claude_code/assistant_response":
		r := &events.AgentResponse{Model: bounded(a.str("model"), 128), Length: a.uint("response_length", "length")}
		if text := a.str("response", "text", "content", "message"); text != "" {
			r.Text = keepText(mode, text)
			r.Length = uint64(len(text))
		}
		p = r
	case "codex/tool_decision", "claude_code/tool_decision":
		callID = agentID(a.str("call_id", "tool_use_id"))
		d := &events.AgentToolDecision{ToolName: toolName(a.str("tool_name")), CallID: callID,
			Decision: bounded(a.str("decision"), 64), DecisionSource: bounded(a.str("source", "decision_source"), 64)}
		d.Verdict = verdict(d.Decision)
		cmd, path := callTarget(a)
		d.Command, d.Path, d.Policy = m.judged(mode, d.ToolName, cmd, path)
		p = d
	case "codex/tool_result", "claude_code/tool_result":
		callID = agentID(a.str("call_id", "tool_use_id"))
		r := &events.AgentToolResult{ToolName: toolName(a.str("tool_name")), CallID: callID,
			ToolNamespace: bounded(a.str("tool_namespace"), 128), MCPServer: bounded(a.str("mcp_server", "mcp_server_name"), 128),
			DurationMS: a.uint("duration_ms"), Decision: bounded(a.str("decision_type", "decision"), 64),
			DecisionSource: bounded(a.str("decision_source"), 64), Error: redactBounded(a.str("error"), 1024)}
		r.Success, _ = a.boolean("success")
		if args := a.str("arguments", "tool_input", "tool_parameters"); args != "" {
			r.Arguments = keepText(mode, args)
		}
		if out := a.str("output"); out != "" {
			r.Output = keepText(mode, out)
		}
		cmd, path := callTarget(a)
		r.Command, r.Path, r.Policy = m.judged(mode, r.ToolName, cmd, path)
		p = r
	default:
		var body *pcommon.Value
		if b := lr.Body(); unnamed && b.Type() != pcommon.ValueTypeEmpty {
			body = &b
		}
		attrs, dropped := otherAttrs(lr.Attributes(), body)
		p = &events.AgentOther{Attributes: attrs, AttributesDropped: dropped}
	}
	c.fill(p)
	var trace, toolCall string
	if tid := lr.TraceID(); !tid.IsEmpty() {
		trace = hex.EncodeToString(tid[:])
	}
	if callID != "" && m.link != nil {
		if id, ok := m.link.ToolCallID(callID); ok {
			toolCall = id
		}
	}
	// One literal list, no append: New keeps no option, so the list and
	// the options stay on the stack (an empty trace or tool call id is
	// the field's zero value).
	env, err := events.New(p, events.WithIDs(m.ids), events.WithTime(m.recordTime(lr, a)), events.WithTenant(t.Name),
		events.WithSession(sessionFor(t, c.conv, src), ""), events.WithActor(events.ActorAgent, agentName),
		events.WithAgent(agentName, bounded(a.str("app.version", "service.version"), 64)),
		events.WithTrace(trace), events.WithToolCall(toolCall))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	return env, nil
}

// judged returns the command and path to keep under mode (redacted;
// neither under drop) and the policy's verdict on them.
func (m *Mapper) judged(mode TextMode, tool, cmd, path string) (string, string, *events.AgentPolicy) {
	var pol *events.AgentPolicy
	if m.judge != nil && (cmd != "" || path != "") {
		if v, ok := m.judge.Judge(AgentCall{Tool: tool, Command: cmd, Path: path}); ok {
			pol = &v
		}
	}
	if mode == TextDrop {
		return "", "", pol
	}
	return redactBounded(cmd, 4096), redactBounded(path, 4096), pol
}

// common holds the fields every agent payload carries.
type common struct {
	src, name, conv, prompt, op string
	seq                         uint64
}

func (c common) fill(p events.Payload) {
	set := func(src, name, conv, prompt, op *string, seq *uint64) {
		*src, *name, *conv, *prompt, *op, *seq = c.src, c.name, c.conv, c.prompt, c.op, c.seq
	}
	switch x := p.(type) {
	case *events.AgentPrompt:
		set(&x.Source, &x.EventName, &x.ConversationID, &x.PromptID, &x.Operator, &x.Sequence)
	case *events.AgentModelCall:
		set(&x.Source, &x.EventName, &x.ConversationID, &x.PromptID, &x.Operator, &x.Sequence)
	case *events.AgentResponse:
		set(&x.Source, &x.EventName, &x.ConversationID, &x.PromptID, &x.Operator, &x.Sequence)
	case *events.AgentToolDecision:
		set(&x.Source, &x.EventName, &x.ConversationID, &x.PromptID, &x.Operator, &x.Sequence)
	case *events.AgentToolResult:
		set(&x.Source, &x.EventName, &x.ConversationID, &x.PromptID, &x.Operator, &x.Sequence)
	case *events.AgentSession:
		set(&x.Source, &x.EventName, &x.ConversationID, &x.PromptID, &x.Operator, &x.Sequence)
	case *events.AgentOther:
		set(&x.Source, &x.EventName, &x.ConversationID, &x.PromptID, &x.Operator, &x.Sequence)
	}
}

// recordTime is the record's time, else its observed time (Codex sends
// timeUnixNano 0), else its event.timestamp attribute, else now. Times a
// ClickHouse DateTime cannot hold are replaced by now.
func (m *Mapper) recordTime(lr plog.LogRecord, a attrs) time.Time {
	now := m.now()
	for _, ns := range []uint64{uint64(lr.Timestamp()), uint64(lr.ObservedTimestamp())} {
		if ns != 0 && ns < math.MaxInt64 {
			if t := time.Unix(0, int64(ns)); plausible(t, now) {
				return t
			}
		}
	}
	if s := a.str("event.timestamp"); s != "" {
		if t, err := time.Parse(time.RFC3339Nano, s); err == nil && plausible(t, now) {
			return t
		}
	}
	return now
}

func plausible(t, now time.Time) bool {
	return t.Year() >= 2000 && t.Before(now.Add(24*time.Hour))
}

// sessionFor names the session an agent event goes into.
func sessionFor(t Tenant, conv, src string) string {
	if t.SessionID != "" {
		return t.SessionID
	}
	if s := sessionName(conv); s != "" {
		return s
	}
	return "agent-" + strings.ReplaceAll(src, "_", "-") + "-unknown"
}

// sessionName makes an agent's conversation id a valid session id (the
// envelope's name pattern): other characters become '-', at most 128.
func sessionName(s string) string {
	if s == "" || validSessionName(s) {
		return s
	}
	b := []byte(s)
	if len(b) > 128 {
		b = b[:128]
	}
	for i, c := range b {
		ok := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9'
		if i > 0 && strings.IndexByte("._:@/+=-", c) >= 0 {
			ok = true
		}
		if !ok {
			b[i] = '-'
		}
	}
	if b[0] == '-' {
		b[0] = 'x'
	}
	return string(b)
}

// validSessionName says sessionName would return s unchanged.
func validSessionName(s string) bool {
	if len(s) > 128 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		ok := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9'
		if !ok && (i == 0 || strings.IndexByte("._:@/+=-", c) < 0) {
			return false
		}
	}
	return true
}

// agentID makes s a valid agent id (printable ASCII without spaces, at
// most 256 bytes): other bytes become '_'.
func agentID(s string) string {
	if len(s) > 256 {
		s = s[:256]
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '!' || s[i] > '~' {
			b := []byte(s)
			for j := i; j < len(b); j++ {
				if b[j] < '!' || b[j] > '~' {
					b[j] = '_'
				}
			}
			return string(b)
		}
	}
	return s
}

// toolName is an agent id of at most 128 bytes.
func toolName(s string) string {
	s = agentID(s)
	if len(s) > 128 {
		s = s[:128]
	}
	return s
}

func bounded(s string, n int) string {
	s, _ = boundUTF8(strings.TrimSpace(s), n)
	return s
}

func redactBounded(s string, n int) string {
	s, _ = Redact(s)
	return bounded(s, n)
}

func boundList(in []string, items, n int) []string {
	var out []string
	for _, s := range in {
		if s = bounded(s, n); s != "" && len(out) < items {
			out = append(out, s)
		}
	}
	return out
}

func microUSD(a attrs) uint64 {
	if a.has("cost_usd_micros") {
		return a.uint("cost_usd_micros")
	}
	f, ok := a.float("cost_usd")
	if !ok {
		return 0
	}
	return clampUint(math.Round(f * 1e6))
}

// verdict normalises an agent's decision word.
func verdict(d string) string {
	switch strings.ToLower(strings.TrimSpace(d)) {
	case "approved", "approved_for_session", "approve", "accept", "accepted", "allow", "allowed", "yes", "auto_approved":
		return events.VerdictAllow
	case "denied", "deny", "reject", "rejected", "abort", "aborted", "block", "blocked", "no", "user_reject", "user_abort":
		return events.VerdictDeny
	case "ask", "prompt", "asked":
		return events.VerdictAsk
	}
	return events.VerdictUnknown
}

// callTarget finds what a tool call ran or wrote in its arguments: Codex's
// arguments ({"cmd": …} or {"command": [...]}), Claude Code's tool_input
// ({"command": …}, {"file_path": …}) or tool_parameters
// ({"bash_command": …, "full_command": …}).
func callTarget(a attrs) (cmd, path string) {
	for _, key := range []string{"arguments", "tool_input", "tool_parameters"} {
		raw := a.str(key)
		if raw == "" || raw[0] != '{' {
			continue
		}
		var m map[string]json.RawMessage
		if json.Unmarshal([]byte(raw), &m) != nil {
			continue
		}
		for _, k := range []string{"full_command", "bash_command", "cmd", "command"} {
			if cmd = jsonCommand(m[k]); cmd != "" {
				break
			}
		}
		for _, k := range []string{"file_path", "path", "notebook_path"} {
			var s string
			if raw := m[k]; len(raw) > 0 && json.Unmarshal(raw, &s) == nil && s != "" {
				path = s
				break
			}
		}
		if cmd != "" || path != "" {
			return cmd, path
		}
	}
	return "", ""
}

// jsonCommand reads a command given as a string or an argv array (joined,
// quoted where needed; bash -lc SCRIPT gives the script).
func jsonCommand(raw json.RawMessage) string {
	if len(raw) == 0 {
		return ""
	}
	var s string
	if json.Unmarshal(raw, &s) == nil {
		return s
	}
	var argv []string
	if json.Unmarshal(raw, &argv) != nil || len(argv) == 0 {
		return ""
	}
	if len(argv) == 3 && (argv[0] == "bash" || argv[0] == "sh" || argv[0] == "zsh" || strings.HasSuffix(argv[0], "/bash") || strings.HasSuffix(argv[0], "/sh")) &&
		(argv[1] == "-lc" || argv[1] == "-c") {
		return argv[2]
	}
	q := make([]string, len(argv))
	for i, x := range argv {
		q[i] = shellQuote(x)
	}
	return strings.Join(q, " ")
}

func shellQuote(a string) string {
	if a == "" {
		return "''"
	}
	if strings.IndexFunc(a, func(c rune) bool {
		return !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.ContainsRune("-_./=:,+@%", c))
	}) < 0 {
		return a
	}
	return "'" + strings.ReplaceAll(a, "'", `'\''`) + "'"
}

// joinKeys are attributes an agent.other event carries in its own fields.
var joinKeys = []string{"conversation.id", "session.id", "prompt.id", "event.name", "event.sequence", "event.timestamp"}

const (
	maxOtherAttrs    = 32
	maxOtherValue    = 128
	maxOtherAttrText = 512
)

// otherAttrs renders a record's attributes (and the body of a plain log
// line, as "body") for agent.other: key=value, sorted, at most 32; values
// redacted; strings longer than 128 bytes kept as their length and sha256
// only.
func otherAttrs(kvs pcommon.Map, body *pcommon.Value) ([]string, uint64) {
	out := make([]string, 0, kvs.Len()+1)
	if body != nil {
		out = append(out, otherAttr("body", *body))
	}
	for k, v := range kvs.All() {
		if k == "" || slices.Contains(joinKeys, k) {
			continue
		}
		out = append(out, otherAttr(k, v))
	}
	slices.Sort(out)
	var dropped uint64
	if len(out) > maxOtherAttrs {
		dropped = uint64(len(out) - maxOtherAttrs)
		out = out[:maxOtherAttrs]
	}
	return out, dropped
}

func orDefault(s, d string) string {
	if s == "" {
		return d
	}
	return s
}

func otherAttr(k string, val pcommon.Value) string {
	v, ok := valueString(val)
	switch {
	case !ok:
		v = "(map)"
	case len(v) > maxOtherValue:
		t := keepText(TextHash, v)
		v = "len:" + strconv.FormatUint(t.Length, 10) + " sha256:" + t.SHA256
	case val.Type() == pcommon.ValueTypeStr || val.Type() == pcommon.ValueTypeSlice || val.Type() == pcommon.ValueTypeBytes:
		// A number or a bool holds no secret.
		v, _ = Redact(v)
	}
	e, _ := boundUTF8(k+"="+v, maxOtherAttrText)
	return e
}
