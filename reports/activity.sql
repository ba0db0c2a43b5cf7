-- title: Activity by agent and session
-- purpose: One row per session with events in the period: the agent, the
--   first and last event, and how many tool calls, policy decisions of each
--   kind, approval requests, egress decisions and alerts it had.
-- param: from DateTime  start of the period (inclusive)
-- param: to DateTime  end of the period (exclusive)
-- findings: no
-- chart: events_per_day day event_count
-- chart: decisions decision_type decisions
-- No FINAL: every count is of distinct (event_id, hash), a small set per
-- session, so a redelivered event not yet merged counts once; min, max
-- and any do not change when a row is stored twice.
SELECT
    tenant,
    anyIf(agent_name, agent_name != '')                                          AS agent,
    session_id,
    min(event_time)                                                              AS first_event,
    max(event_time)                                                              AS last_event,
    uniqExact(cityHash64(event_id, hash))                                                    AS event_count,
    uniqExactIf(cityHash64(event_id, hash), event_type = 'tool_call.requested')              AS tool_call_count,
    uniqExactIf(cityHash64(event_id, hash), event_type = 'policy.decision' AND decision = 'allow') AS allowed,
    uniqExactIf(cityHash64(event_id, hash), event_type = 'policy.decision' AND decision = 'ask')   AS asked,
    uniqExactIf(cityHash64(event_id, hash), event_type = 'policy.decision' AND decision = 'deny')  AS denied,
    uniqExactIf(cityHash64(event_id, hash), event_type = 'approval.requested')               AS approval_requests,
    uniqExactIf(cityHash64(event_id, hash), event_type = 'net.egress' AND egress_phase = 'decision') AS egress_decisions,
    uniqExactIf(cityHash64(event_id, hash), event_type = 'alert.raised')                     AS alert_count
FROM events
WHERE event_time >= @from AND toDate(event_time) >= toDate(@from) - 1 AND event_time < @to AND toDate(event_time) <= toDate(@to) + 1
GROUP BY tenant, session_id
ORDER BY agent, tenant, session_id
