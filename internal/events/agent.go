package events

// Agent-native telemetry: what an agent CLI (Codex, Claude Code) reports
// about itself over OpenTelemetry, mapped by internal/otlp into these v1
// event types. Each has a schema schemas/v1/<type>.json.
const (
	TypeAgentPrompt       = "agent.prompt"
	TypeAgentModelCall    = "agent.model_call"
	TypeAgentResponse     = "agent.response"
	TypeAgentToolDecision = "agent.tool_decision"
	TypeAgentToolResult   = "agent.tool_result"
	TypeAgentSession      = "agent.session"
	TypeAgentOther        = "agent.other"
)

// Agent telemetry sources (payload field source).
const (
	AgentSourceCodex      = "codex"
	AgentSourceClaudeCode = "claude_code"
)

// Text modes: how prompt, response, argument and output text is kept.
const (
	TextStore = "store" // redacted text, cut to MaxAgentText, with sha256 and length
	TextHash  = "hash"  // sha256 and length only (the default)
	TextDrop  = "drop"  // length only
)

// MaxAgentText bounds AgentText.Text in bytes.
const MaxAgentText = 16384

// Model call kinds (agent.model_call kind).
const (
	ModelCallCall    = "call"
	ModelCallRequest = "request"
	ModelCallUsage   = "usage"
	ModelCallError   = "error"
)

// Agent tool decision verdicts (agent.tool_decision verdict).
const (
	VerdictAllow   = "allow"
	VerdictAsk     = "ask"
	VerdictDeny    = "deny"
	VerdictUnknown = "unknown"
)

// AgentText is a text an agent logged, kept per the tenant's text mode.
type AgentText struct {
	Mode   string `json:"mode"`
	Length uint64 `json:"length"`
	// SHA256 is of the original text, before redaction (absent under drop).
	SHA256 string `json:"sha256,omitempty"`
	// Text is the redacted text, under store only.
	Text       string `json:"text,omitempty"`
	Truncated  bool   `json:"truncated,omitempty"`
	Redactions uint64 `json:"redactions,omitempty"`
}

// AgentPolicy is what this deployment's tool-call policy says about a
// command an agent ran on its own.
type AgentPolicy struct {
	Decision     Decision   `json:"decision"`
	ReasonCode   ReasonCode `json:"reason_code"`
	RuleID       string     `json:"rule_id,omitempty"`
	PolicyID     string     `json:"policy_id,omitempty"`
	PolicySHA256 string     `json:"policy_sha256,omitempty"`
}

// AgentPrompt is a user prompt the agent received.
type AgentPrompt struct {
	Source         string     `json:"source"`
	EventName      string     `json:"event_name"`
	ConversationID string     `json:"conversation_id,omitempty"`
	PromptID       string     `json:"prompt_id,omitempty"`
	Sequence       uint64     `json:"sequence,omitempty"`
	Operator       string     `json:"operator,omitempty"`
	Length         uint64     `json:"length"`
	Text           *AgentText `json:"text,omitempty"`
}

// EventType implements Payload.
func (AgentPrompt) EventType() string { return TypeAgentPrompt }

// AgentModelCall is a call to the model with its token counts and cost.
type AgentModelCall struct {
	Source              string `json:"source"`
	EventName           string `json:"event_name"`
	ConversationID      string `json:"conversation_id,omitempty"`
	PromptID            string `json:"prompt_id,omitempty"`
	Sequence            uint64 `json:"sequence,omitempty"`
	Operator            string `json:"operator,omitempty"`
	Kind                string `json:"kind"`
	Model               string `json:"model,omitempty"`
	InputTokens         uint64 `json:"input_tokens,omitempty"`
	OutputTokens        uint64 `json:"output_tokens,omitempty"`
	CacheReadTokens     uint64 `json:"cache_read_tokens,omitempty"`
	CacheCreationTokens uint64 `json:"cache_creation_tokens,omitempty"`
	ReasoningTokens     uint64 `json:"reasoning_tokens,omitempty"`
	ToolTokens          uint64 `json:"tool_tokens,omitempty"`
	CostMicroUSD        uint64 `json:"cost_micro_usd,omitempty"`
	DurationMS          uint64 `json:"duration_ms,omitempty"`
	Status              string `json:"status,omitempty"`
	Endpoint            string `json:"endpoint,omitempty"`
	Attempt             uint64 `json:"attempt,omitempty"`
	Error               string `json:"error,omitempty"`
}

// EventType implements Payload.
func (AgentModelCall) EventType() string { return TypeAgentModelCall }

// AgentResponse is the model's answer as the agent logged it.
type AgentResponse struct {
	Source         string     `json:"source"`
	EventName      string     `json:"event_name"`
	ConversationID string     `json:"conversation_id,omitempty"`
	PromptID       string     `json:"prompt_id,omitempty"`
	Sequence       uint64     `json:"sequence,omitempty"`
	Operator       string     `json:"operator,omitempty"`
	Model          string     `json:"model,omitempty"`
	Length         uint64     `json:"length"`
	Text           *AgentText `json:"text,omitempty"`
}

// EventType implements Payload.
func (AgentResponse) EventType() string { return TypeAgentResponse }

// AgentToolDecision is the agent's own decision on a tool call.
type AgentToolDecision struct {
	Source         string       `json:"source"`
	EventName      string       `json:"event_name"`
	ConversationID string       `json:"conversation_id,omitempty"`
	PromptID       string       `json:"prompt_id,omitempty"`
	Sequence       uint64       `json:"sequence,omitempty"`
	Operator       string       `json:"operator,omitempty"`
	ToolName       string       `json:"tool_name,omitempty"`
	CallID         string       `json:"call_id,omitempty"`
	Decision       string       `json:"decision,omitempty"`
	Verdict        string       `json:"verdict"`
	DecisionSource string       `json:"decision_source,omitempty"`
	Command        string       `json:"command,omitempty"`
	Path           string       `json:"path,omitempty"`
	Policy         *AgentPolicy `json:"policy,omitempty"`
}

// EventType implements Payload.
func (AgentToolDecision) EventType() string { return TypeAgentToolDecision }

// AgentToolResult is a tool call the agent ran and its result.
type AgentToolResult struct {
	Source         string       `json:"source"`
	EventName      string       `json:"event_name"`
	ConversationID string       `json:"conversation_id,omitempty"`
	PromptID       string       `json:"prompt_id,omitempty"`
	Sequence       uint64       `json:"sequence,omitempty"`
	Operator       string       `json:"operator,omitempty"`
	ToolName       string       `json:"tool_name,omitempty"`
	CallID         string       `json:"call_id,omitempty"`
	ToolNamespace  string       `json:"tool_namespace,omitempty"`
	MCPServer      string       `json:"mcp_server,omitempty"`
	Success        bool         `json:"success"`
	DurationMS     uint64       `json:"duration_ms,omitempty"`
	Decision       string       `json:"decision,omitempty"`
	DecisionSource string       `json:"decision_source,omitempty"`
	Command        string       `json:"command,omitempty"`
	Path           string       `json:"path,omitempty"`
	Arguments      *AgentText   `json:"arguments,omitempty"`
	Output         *AgentText   `json:"output,omitempty"`
	Error          string       `json:"error,omitempty"`
	Policy         *AgentPolicy `json:"policy,omitempty"`
}

// EventType implements Payload.
func (AgentToolResult) EventType() string { return TypeAgentToolResult }

// AgentSession is the agent's session settings when a conversation starts.
type AgentSession struct {
	Source          string   `json:"source"`
	EventName       string   `json:"event_name"`
	ConversationID  string   `json:"conversation_id,omitempty"`
	PromptID        string   `json:"prompt_id,omitempty"`
	Sequence        uint64   `json:"sequence,omitempty"`
	Operator        string   `json:"operator,omitempty"`
	Model           string   `json:"model,omitempty"`
	Provider        string   `json:"provider,omitempty"`
	ApprovalPolicy  string   `json:"approval_policy,omitempty"`
	SandboxPolicy   string   `json:"sandbox_policy,omitempty"`
	ReasoningEffort string   `json:"reasoning_effort,omitempty"`
	Originator      string   `json:"originator,omitempty"`
	MCPServers      []string `json:"mcp_servers,omitempty"`
}

// EventType implements Payload.
func (AgentSession) EventType() string { return TypeAgentSession }

// AgentOther is a known agent's event this version does not map, kept
// bounded: attributes as sorted key=value strings.
type AgentOther struct {
	Source            string   `json:"source"`
	EventName         string   `json:"event_name"`
	ConversationID    string   `json:"conversation_id,omitempty"`
	PromptID          string   `json:"prompt_id,omitempty"`
	Sequence          uint64   `json:"sequence,omitempty"`
	Operator          string   `json:"operator,omitempty"`
	Attributes        []string `json:"attributes"`
	AttributesDropped uint64   `json:"attributes_dropped,omitempty"`
}

// EventType implements Payload.
func (AgentOther) EventType() string { return TypeAgentOther }
