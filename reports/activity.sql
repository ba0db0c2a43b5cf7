-- title: Activity by agent and session
-- purpose: One row per session with events in the period: the agent, the
--   first and last event, and how many tool calls, policy decisions of each
--   kind, approval requests, egress decisions and alerts it had.
-- param: from DateTime  start of the period (inclusive)
-- param: to DateTime  end of the period (exclusive)
-- findings: no
-- chart: events_per_day day event_count
-- chart: decisions decision_type decisions
-- Whole UTC days come from activity_sessions (migration 0015: per
-- session and day, aggregate states filled at insert); the partial days at
-- either end of the period come from events, folded into the same states.
-- No FINAL: every count is uniqExact of (event_id, hash), which counts a
-- redelivered event once whether or not it is merged yet, in events or in
-- the states; min, max and any do not change when a row is stored twice.
SELECT
    tenant,
    anyIfMerge(s_agent)                  AS agent,
    session_id,
    minMerge(s_first)                    AS first_event,
    maxMerge(s_last)                     AS last_event,
    uniqExactMerge(s_events)             AS event_count,
    uniqExactIfMerge(s_tool_calls)       AS tool_call_count,
    uniqExactIfMerge(s_allowed)          AS allowed,
    uniqExactIfMerge(s_asked)            AS asked,
    uniqExactIfMerge(s_denied)           AS denied,
    uniqExactIfMerge(s_approvals)        AS approval_requests,
    uniqExactIfMerge(s_egress)           AS egress_decisions,
    uniqExactIfMerge(s_alerts)           AS alert_count
FROM
(
    SELECT
        tenant, session_id, agent AS s_agent, first_event AS s_first, last_event AS s_last, events AS s_events,
        tool_calls AS s_tool_calls, allowed AS s_allowed, asked AS s_asked, denied AS s_denied,
        approval_requests AS s_approvals, egress_decisions AS s_egress, alerts AS s_alerts
    FROM activity_sessions
    -- The days that lie wholly inside [@from, @to).
    WHERE day >= toDate(toTimeZone(@from, 'UTC')) + (toStartOfDay(toTimeZone(@from, 'UTC')) < @from) AND day < toDate(toTimeZone(@to, 'UTC'))
    UNION ALL
    SELECT
        tenant, session_id,
        anyIfState(CAST(agent_name AS String), agent_name != '')                             AS s_agent,
        minState(event_time)                                                                 AS s_first,
        maxState(event_time)                                                                 AS s_last,
        uniqExactState(cityHash64(event_id, hash))                                           AS s_events,
        uniqExactIfState(cityHash64(event_id, hash), event_type = 'tool_call.requested')     AS s_tool_calls,
        uniqExactIfState(cityHash64(event_id, hash), event_type = 'policy.decision' AND decision = 'allow') AS s_allowed,
        uniqExactIfState(cityHash64(event_id, hash), event_type = 'policy.decision' AND decision = 'ask')   AS s_asked,
        uniqExactIfState(cityHash64(event_id, hash), event_type = 'policy.decision' AND decision = 'deny')  AS s_denied,
        uniqExactIfState(cityHash64(event_id, hash), event_type = 'approval.requested')      AS s_approvals,
        uniqExactIfState(cityHash64(event_id, hash), event_type = 'net.egress' AND egress_phase = 'decision') AS s_egress,
        uniqExactIfState(cityHash64(event_id, hash), event_type = 'alert.raised')            AS s_alerts
    FROM events
    -- The rest of the period: the part of the first day from @from and of
    -- the last day up to @to (all of it when the period is within one day).
    WHERE event_time >= @from AND toDate(event_time) >= toDate(@from) - 1 AND event_time < @to AND toDate(event_time) <= toDate(@to) + 1
      AND (toDate(event_time) < toDate(toTimeZone(@from, 'UTC')) + (toStartOfDay(toTimeZone(@from, 'UTC')) < @from) OR toDate(event_time) >= toDate(toTimeZone(@to, 'UTC')))
    GROUP BY tenant, session_id
)
GROUP BY tenant, session_id
ORDER BY agent, tenant, session_id
