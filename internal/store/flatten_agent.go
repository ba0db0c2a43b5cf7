package store

import (
	"strconv"
	"strings"

	"github.com/agentaudit/agentaudit/internal/events"
)

// The agent.* payloads: what an agent CLI's own telemetry says it did.

func agentPromptResponse(r *EventRow, k string, v events.JSONValue) error {
	switch k {
	case "model":
		r.Model = v.Str()
	case "length":
		if r.TextLength == 0 {
			return setUint(&r.TextLength, v)
		}
	case "text":
		return agentText(r, v)
	default:
		agentCommon(r, k, v)
	}
	return nil
}

func agentModelCall(r *EventRow, k string, v events.JSONValue) error {
	switch k {
	case "kind":
		r.Kind = v.Str()
	case "model":
		r.Model = v.Str()
	case "input_tokens":
		return setUint(&r.InputTokens, v)
	case "output_tokens":
		return setUint(&r.OutputTokens, v)
	case "cache_read_tokens":
		return setUint(&r.CacheReadTokens, v)
	case "cache_creation_tokens":
		return setUint(&r.CacheCreationTokens, v)
	case "reasoning_tokens":
		return setUint(&r.ReasoningTokens, v)
	case "tool_tokens":
		return setUint(&r.ToolTokens, v)
	case "cost_micro_usd":
		return setUint(&r.CostMicroUSD, v)
	case "duration_ms":
		return setUint(&r.DurationMS, v)
	case "status":
		r.StatusCode, r.Reason = agentStatus(v.Str())
	case "endpoint":
		r.URL = v.Str()
	case "error":
		r.Error = v.Str()
	default:
		agentCommon(r, k, v)
	}
	return nil
}

// agentTool flattens agent.tool_decision and agent.tool_result.
func agentTool(r *EventRow, k string, v events.JSONValue) error {
	switch k {
	case "tool_name":
		r.ToolName = v.Str()
	case "call_id":
		r.AgentCallID = v.Str()
	case "decision":
		r.AgentDecision = v.Str()
	case "verdict":
		r.Kind = v.Str()
	case "decision_source":
		r.DecisionSource = v.Str()
	case "command":
		r.Command = bound(v.Str(), MaxCommandLen)
	case "path":
		r.Path = v.Str()
	case "policy":
		return agentPolicy(r, v)
	case "success":
		r.Success = v.Raw() == "true"
	case "duration_ms":
		return setUint(&r.DurationMS, v)
	case "arguments":
		return agentText(r, v)
	case "output":
		return output(v, &r.StdoutLength, &r.StdoutSHA256)
	case "error":
		r.Error = v.Str()
	default:
		agentCommon(r, k, v)
	}
	return nil
}

// agentPolicy flattens the policy an agent's hook decided under; the
// envelope's policy, when there is one, comes first.
func agentPolicy(r *EventRow, obj events.JSONValue) error {
	return members(obj, func(k string, v events.JSONValue) error {
		switch k {
		case "decision":
			r.Decision = v.Str()
		case "reason_code":
			r.ReasonCode = v.Str()
		case "rule_id":
			r.RuleID = v.Str()
		case "policy_id":
			if r.PolicyID == "" {
				r.PolicyID = v.Str()
			}
		case "policy_sha256":
			if r.PolicySHA256 == "" {
				r.PolicySHA256 = v.Str()
			}
		}
		return nil
	})
}

func agentSession(r *EventRow, k string, v events.JSONValue) error {
	switch k {
	case "model":
		r.Model = v.Str()
	case "approval_policy":
		r.ApprovalPolicy = v.Str()
	case "sandbox_policy":
		r.SandboxPolicy = v.Str()
	case "originator":
		r.ClientName = v.Str()
	case "mcp_servers":
		a, err := stringArray(v)
		r.Summary = bound(strings.Join(a, ","), MaxCommandLen)
		return err
	default:
		agentCommon(r, k, v)
	}
	return nil
}

func agentOther(r *EventRow, k string, v events.JSONValue) error {
	switch k {
	case "attributes":
		a, err := stringArray(v)
		r.Summary = bound(strings.Join(a, " "), MaxCommandLen)
		return err
	default:
		agentCommon(r, k, v)
	}
	return nil
}

// agentCommon flattens the fields every agent.* payload shares.
func agentCommon(r *EventRow, k string, v events.JSONValue) {
	switch k {
	case "source":
		r.AgentSource = v.Str()
	case "event_name":
		r.AgentEvent = v.Str()
	case "conversation_id":
		r.ConversationID = v.Str()
	case "prompt_id":
		r.PromptID = v.Str()
	case "operator":
		r.Operator = v.Str()
	}
}

// agentText flattens an agent text object (mode, length, sha256, text).
func agentText(r *EventRow, obj events.JSONValue) error {
	return members(obj, func(k string, v events.JSONValue) error {
		switch k {
		case "mode":
			r.TextMode = v.Str()
		case "length":
			return setUint(&r.TextLength, v)
		case "sha256":
			r.TextSHA256 = v.Str()
		case "text":
			r.Text = v.Str()
		}
		return nil
	})
}

// agentStatus reads an agent's call status: an HTTP status goes to
// status_code, anything else to reason.
func agentStatus(s string) (uint16, string) {
	if n, err := strconv.ParseUint(s, 10, 16); err == nil {
		return uint16(n), ""
	}
	return 0, s
}
