-- title: Tool calls agents ran on their own say-so that policy would have stopped
-- purpose: Tool calls an agent reported running itself (agent.tool_result
--   from its own OpenTelemetry) that did not go through a runner (no
--   tool_call.requested carries the agent's call id in client_meta) and
--   for which this deployment's tool-call policy says ask or deny (the
--   receiver judged the command or written path with the policy:
--   payload.policy). Each row names the agent's own decision and who made
--   it (from the result, or the agent.tool_decision with the same call id):
--   the user, the agent's configuration, a hook. finding policy_would_ask
--   or policy_would_deny. Must be empty where every agent runs under a
--   runner.
-- param: from DateTime  start of the period (inclusive)
-- param: to DateTime  end of the period (exclusive)
-- findings: yes
SELECT
    tenant, session_id, conversation_id, ran_at, agent, tool_name, command, path,
    if(r_decision != '', r_decision, d_decision)      AS agent_decision,
    if(r_source != '', r_source, d_source)            AS decided_by,
    policy_decision, reason_code, rule_id, agent_call_id, outcome,
    concat('policy_would_', policy_decision)          AS finding
FROM
(
    SELECT
        tenant, session_id, conversation_id, event_time AS ran_at, agent_name AS agent, tool_name, command, path,
        agent_decision AS r_decision, decision_source AS r_source, decision AS policy_decision,
        reason_code, rule_id, agent_call_id, if(success = 1, 'ok', 'failed') AS outcome
    FROM events FINAL
    WHERE event_type = 'agent.tool_result' AND decision IN ('ask', 'deny')
      AND event_time >= @from AND event_time < @to
      AND (agent_call_id = '' OR (tenant, agent_call_id) NOT IN
            (SELECT tenant, agent_call_id FROM events
             WHERE event_type = 'tool_call.requested' AND agent_call_id != '' AND event_time >= @from))
) AS r
ANY LEFT JOIN
(
    SELECT tenant, agent_call_id, any(agent_decision) AS d_decision, any(decision_source) AS d_source
    FROM events FINAL
    WHERE event_type = 'agent.tool_decision' AND agent_call_id != '' AND event_time >= @from
    GROUP BY tenant, agent_call_id
) AS d USING (tenant, agent_call_id)
ORDER BY tenant, ran_at, agent_call_id
