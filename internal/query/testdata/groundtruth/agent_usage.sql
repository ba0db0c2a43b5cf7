-- title: Agent model usage: tokens and cost per day
-- purpose: Model calls the agents reported about themselves
--   (agent.model_call, from their own OpenTelemetry), per UTC day, tenant,
--   operator, agent and model: calls, failed calls, input, output, cached
--   and reasoning tokens, and the cost in USD as the agent computed it
--   (Claude Code reports cost; Codex does not). Codex reports a call's HTTP
--   request and its token usage as two events (kind request and usage),
--   Claude Code as one (kind call): calls counts requests and calls, the
--   tokens come from usage and call events. Token counts and costs are kept
--   whatever the tenant's text setting.
-- param: from DateTime  start of the period (inclusive)
-- param: to DateTime  end of the period (exclusive)
-- findings: no
-- chart: self model tokens_out
SELECT
    toDate(event_time)                        AS day,
    tenant,
    operator,
    agent_name                                AS agent,
    model,
    countIf(kind IN ('call', 'request'))      AS calls,
    countIf(kind = 'error')                   AS failed,
    sum(input_tokens)                         AS tokens_in,
    sum(output_tokens)                        AS tokens_out,
    sum(cache_read_tokens)                    AS tokens_cached,
    sum(reasoning_tokens)                     AS tokens_reasoning,
    toString(round(sum(cost_micro_usd) / 1000000, 6)) AS cost_usd
FROM events FINAL
WHERE event_type = 'agent.model_call' AND event_time >= @from AND event_time < @to
GROUP BY day, tenant, operator, agent, model
ORDER BY day, tenant, operator, agent, model
