-- Agent-native telemetry: the columns the agent.* events flatten into,
-- and the runner's side of the join (tool_call.requested's client_meta).
--
-- One column per statement (18.16 has no ADD COLUMN IF NOT EXISTS; the
-- migration runner counts "already exists" as done), after
-- process_count, in store.EventColumns' order.
--
--   agent_source      agent.*: codex or claude_code
--   agent_event       agent.*: the OpenTelemetry event name (codex.tool_result)
--   conversation_id   agent.*: the agent's conversation / session id;
--                     tool_call.requested: client_meta.session_id (or thread_id)
--   prompt_id         agent.*: the prompt (Claude Code prompt.id);
--                     tool_call.requested: client_meta.turn_id
--   agent_call_id     agent.tool_decision / agent.tool_result: call_id;
--                     tool_call.requested: client_meta.call_id (or tool_use_id).
--                     The join key between the agent's record of a call and
--                     the runner's tool_call_id.
--   model             agent.model_call, agent.response, agent.session
--   input_tokens … tool_tokens, cost_micro_usd
--                     agent.model_call: token counts, cost in 1e-6 USD
--   text_mode, text_length, text_sha256, text
--                     agent.prompt / agent.response: the text as kept
--                     (store: redacted text; hash: sha256 and length;
--                     drop: length); agent.tool_result: its arguments
--   agent_decision    agent.tool_decision / agent.tool_result: the agent's
--                     own decision word (approved, accept, denied)
--   decision_source   who made it (config, user, user_temporary, hook)
--   success           agent.tool_result: the tool reported success
--   approval_policy, sandbox_policy
--                     agent.session: the agent's own settings
--
-- Existing columns agent.* events also fill: tool_name, command (redacted),
-- decision / reason_code / rule_id (what our policy says about a command
-- the agent ran on its own, payload.policy), kind (model call kind; the
-- tool decision's verdict), duration_ms, status_code, url (endpoint),
-- error, operator, client_name (Codex originator), stdout_length and
-- stdout_sha256 (a tool result's output), summary (agent.other's
-- attributes).
ALTER TABLE {db}.events ADD COLUMN agent_source String AFTER process_count;
ALTER TABLE {db}.events ADD COLUMN agent_event String AFTER agent_source;
ALTER TABLE {db}.events ADD COLUMN conversation_id String AFTER agent_event;
ALTER TABLE {db}.events ADD COLUMN prompt_id String AFTER conversation_id;
ALTER TABLE {db}.events ADD COLUMN agent_call_id String AFTER prompt_id;
ALTER TABLE {db}.events ADD COLUMN model String AFTER agent_call_id;
ALTER TABLE {db}.events ADD COLUMN input_tokens UInt64 AFTER model;
ALTER TABLE {db}.events ADD COLUMN output_tokens UInt64 AFTER input_tokens;
ALTER TABLE {db}.events ADD COLUMN cache_read_tokens UInt64 AFTER output_tokens;
ALTER TABLE {db}.events ADD COLUMN cache_creation_tokens UInt64 AFTER cache_read_tokens;
ALTER TABLE {db}.events ADD COLUMN reasoning_tokens UInt64 AFTER cache_creation_tokens;
ALTER TABLE {db}.events ADD COLUMN tool_tokens UInt64 AFTER reasoning_tokens;
ALTER TABLE {db}.events ADD COLUMN cost_micro_usd UInt64 AFTER tool_tokens;
ALTER TABLE {db}.events ADD COLUMN text_mode String AFTER cost_micro_usd;
ALTER TABLE {db}.events ADD COLUMN text_length UInt64 AFTER text_mode;
ALTER TABLE {db}.events ADD COLUMN text_sha256 String AFTER text_length;
ALTER TABLE {db}.events ADD COLUMN text String AFTER text_sha256;
ALTER TABLE {db}.events ADD COLUMN agent_decision String AFTER text;
ALTER TABLE {db}.events ADD COLUMN decision_source String AFTER agent_decision;
ALTER TABLE {db}.events ADD COLUMN success UInt8 AFTER decision_source;
ALTER TABLE {db}.events ADD COLUMN approval_policy String AFTER success;
ALTER TABLE {db}.events ADD COLUMN sandbox_policy String AFTER approval_policy;

-- Every model call with its tokens and cost, for usage reports.
CREATE VIEW IF NOT EXISTS {db}.model_calls AS
SELECT
    event_id, tenant, session_id, runner_id, operator, agent_name, agent_version, agent_source,
    conversation_id, prompt_id, event_time, event_time_us, kind, model,
    input_tokens, output_tokens, cache_read_tokens, cache_creation_tokens, reasoning_tokens, tool_tokens,
    cost_micro_usd, duration_ms, status_code, error
FROM {db}.events FINAL
WHERE event_type = 'agent.model_call';
