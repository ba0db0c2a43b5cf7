-- title: Activity by agent and session
-- purpose: One row per session with events in the period: the agent, the
--   first and last event, and how many tool calls, policy decisions of each
--   kind, approval requests, egress decisions and alerts it had.
-- param: from DateTime  start of the period (inclusive)
-- param: to DateTime  end of the period (exclusive)
-- findings: no
-- chart: events_per_day day event_count
-- chart: decisions decision_type decisions
SELECT
    tenant,
    anyIf(agent_name, agent_name != '')                                AS agent,
    session_id,
    min(event_time)                                                    AS first_event,
    max(event_time)                                                    AS last_event,
    count()                                                            AS event_count,
    countIf(event_type = 'tool_call.requested')                        AS tool_call_count,
    countIf(event_type = 'policy.decision' AND decision = 'allow')     AS allowed,
    countIf(event_type = 'policy.decision' AND decision = 'ask')       AS asked,
    countIf(event_type = 'policy.decision' AND decision = 'deny')      AS denied,
    countIf(event_type = 'approval.requested')                         AS approval_requests,
    countIf(event_type = 'net.egress' AND egress_phase = 'decision')   AS egress_decisions,
    countIf(event_type = 'alert.raised')                               AS alert_count
FROM events FINAL
WHERE event_time >= @from AND event_time < @to
GROUP BY tenant, session_id
ORDER BY agent, tenant, session_id
