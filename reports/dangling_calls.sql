-- title: Tool calls allowed but never completed
-- purpose: Tool calls requested in the period that were allowed (their last
--   policy.decision is allow, or it is ask and an approval.decided
--   `approved` answers one of the call's approval ids) and whose runner
--   never recorded a tool_call.completed: the runner died mid-call. Finding
--   no_completion: the call has no completion at all, so nobody has
--   recorded its end; runner_lost: a later runner closed it
--   (tool_call.completed with killed_reason runner_lost), and its real
--   outcome is unknown. Each row names the runner that took the call, when
--   it was requested and allowed, and whether its session has a
--   session.ended and why (runner_lost when a later runner closed it). A
--   call still running when the report runs shows as no_completion without
--   a session end, so run it for a period that ended longer ago than the
--   longest call time-out. Events of the calls are read from @from on,
--   with no upper bound. Must be empty.
-- param: from DateTime  start of the period (inclusive)
-- param: to DateTime  end of the period (exclusive)
-- findings: yes
-- No FINAL: every per-call fold here (any, min, argMax by seq,
-- groupUniqArray, counts only compared with zero) and the session-end
-- lookup are unchanged when a row is stored twice.
SELECT
    tenant, session_id, runner_id, tool_call_id, tool_name, command, requested_at,
    if(last_decision = 'allow', decided_at, approved_at) AS allowed_at,
    session_ended, end_reason,
    if(lost > 0, 'runner_lost', 'no_completion')        AS finding
FROM
(
    SELECT
        any(c_tenant)                               AS tenant,
        any(c_session_id)                           AS session_id,
        any(c_runner_id)                            AS runner_id,
        any(c_tool_call_id)                         AS tool_call_id,
        any(c_tool_name)                            AS tool_name,
        any(c_command)                              AS command,
        any(c_requested_at)                         AS requested_at,
        any(c_last_decision)                        AS last_decision,
        any(c_decided_at)                           AS decided_at,
        any(c_lost)                                 AS lost,
        max(a_approved)                             AS approved,
        minIf(a_approved_at, a_approved = 1)        AS approved_at
    FROM
    (
        SELECT
            call, c_tenant, c_session_id, c_runner_id, c_tool_call_id, c_tool_name, c_command,
            c_requested_at, c_last_decision, c_decided_at, c_lost, aid
        FROM
        (
            SELECT
                call_key                                       AS call,
                any(tenant)                                                                        AS c_tenant,
                any(session_id)                                                                    AS c_session_id,
                any(tool_call_id)                                                                  AS c_tool_call_id,
                anyIf(runner_id, event_type = 'tool_call.requested')                               AS c_runner_id,
                anyIf(tool_name, event_type = 'tool_call.requested')                               AS c_tool_name,
                anyIf(command, event_type = 'tool_call.requested')                                 AS c_command,
                minIf(event_time, event_type = 'tool_call.requested')                              AS c_requested_at,
                countIf(event_type = 'tool_call.requested')                                        AS c_requests,
                argMaxIf(decision, seq, event_type = 'policy.decision')                            AS c_last_decision,
                argMaxIf(event_time, seq, event_type = 'policy.decision')                          AS c_decided_at,
                countIf(event_type = 'tool_call.completed' AND killed_reason != 'runner_lost')     AS c_completed,
                countIf(event_type = 'tool_call.completed' AND killed_reason = 'runner_lost')      AS c_lost,
                groupUniqArrayIf(approval_id, approval_id != '')                                   AS c_approval_ids
            FROM events
            WHERE event_time >= @from AND toDate(event_time) >= toDate(@from) - 1 AND tool_call_id != ''
              AND event_type IN ('tool_call.requested', 'policy.decision', 'approval.requested', 'tool_call.completed')
              -- Calls are keyed by a hash of (tenant, session, id), as in
              -- unapproved_actions: a month of calls must fit the read-only
              -- profile's memory limit.
              -- Only calls that can be findings are folded in full:
              -- requested in the period, allowed or asked, and not completed
              -- (a runner_lost completion may close them). They are chosen
              -- first as one small set: the period's requests that never
              -- completed, then those of them with an allow or ask. The scan
              -- of the calls' events then probes only that set, not three
              -- sets of millions.
              AND call_key IN
                  (SELECT call_key FROM events
                   WHERE event_type = 'policy.decision' AND decision IN ('allow', 'ask') AND event_time >= @from AND toDate(event_time) >= toDate(@from) - 1
                     AND call_key IN
                         (SELECT call_key FROM events
                          WHERE event_type = 'tool_call.requested' AND event_time >= @from AND toDate(event_time) >= toDate(@from) - 1 AND event_time < @to AND toDate(event_time) <= toDate(@to) + 1
                            AND call_key NOT IN
                                (SELECT call_key FROM events
                                 WHERE event_type = 'tool_call.completed' AND killed_reason != 'runner_lost' AND event_time >= @from AND toDate(event_time) >= toDate(@from) - 1)))
            GROUP BY call
            HAVING c_requests > 0 AND c_completed = 0 AND c_last_decision IN ('allow', 'ask')
        )
        LEFT ARRAY JOIN c_approval_ids AS aid
    )
    ANY LEFT JOIN
    (
        SELECT approval_id AS aid, min(event_time) AS a_approved_at, toUInt8(1) AS a_approved
        FROM events
        WHERE event_type = 'approval.decided' AND approval_outcome = 'approved' AND event_time >= @from AND toDate(event_time) >= toDate(@from) - 1
        GROUP BY approval_id
    ) USING aid
    GROUP BY call
)
ANY LEFT JOIN
(
    SELECT tenant, session_id, toUInt8(1) AS session_ended, any(reason) AS end_reason
    FROM events
    WHERE event_type = 'session.ended' AND event_time >= @from AND toDate(event_time) >= toDate(@from) - 1
    GROUP BY tenant, session_id
) USING (tenant, session_id)
WHERE last_decision = 'allow' OR approved = 1
ORDER BY requested_at, tenant, session_id, tool_call_id
