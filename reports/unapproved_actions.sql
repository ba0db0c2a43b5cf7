-- title: Actions executed without a required approval
-- purpose: Tool calls completed in the period that should not have run:
--   no_policy_decision (no policy.decision at all), executed_after_deny
--   (the last decision was deny), ask_without_approval (the policy asked
--   and no approval.decided `approved` that took effect, the first final
--   decision of one of the call's approval ids in the approvals topic's
--   order, was recorded before the completion). Approval ids are taken
--   from every event of the call, so a session-scoped approval referenced
--   by a later decision counts. Must be empty.
-- param: from DateTime  start of the period (inclusive)
-- param: to DateTime  end of the period (exclusive)
-- param: lookback_hours UInt32 = 24  how long before @from the decisions and approvals of a call completed in the period may lie
-- findings: yes
-- No FINAL: every per-call fold here (any, min, argMin/argMax by seq,
-- groupUniqArray, and counts only compared with zero) is unchanged when
-- a row is stored twice.
SELECT
    tenant, session_id, tool_call_id, completed_at, command,
    first_decision, last_decision, approval_ids,
    multiIf(decision_count = 0, 'no_policy_decision',
            last_decision = 'deny', 'executed_after_deny',
            'ask_without_approval') AS finding
FROM
(
    SELECT
        any(c_tenant)           AS tenant,
        any(c_session_id)       AS session_id,
        any(c_tool_call_id)     AS tool_call_id,
        any(c_completed_at)     AS completed_at,
        any(c_command)          AS command,
        any(c_decisions)        AS decision_count,
        any(c_asks)             AS ask_count,
        any(c_first_decision)   AS first_decision,
        any(c_last_decision)    AS last_decision,
        any(c_approval_ids)     AS approval_ids,
        max(approved_us != 0 AND approved_us <= c_completed_us) AS approved_before
    FROM
    (
        SELECT
            call, c_tenant, c_session_id, c_tool_call_id, c_completed_at, c_completed_us, c_command, c_decisions,
            c_asks, c_first_decision, c_last_decision, c_approval_ids, aid
        FROM
        (
            SELECT
                cityHash64(tenant, session_id, tool_call_id)                                              AS call,
                any(tenant)                                                                               AS c_tenant,
                any(session_id)                                                                           AS c_session_id,
                any(tool_call_id)                                                                         AS c_tool_call_id,
                minIf(event_time, event_type = 'tool_call.completed')                                     AS c_completed_at,
                minIf(toUInt64(event_time) * 1000000 + event_time_us, event_type = 'tool_call.completed') AS c_completed_us,
                anyIf(command, event_type = 'tool_call.requested')                                        AS c_command,
                countIf(event_type = 'policy.decision')                                                   AS c_decisions,
                countIf(event_type = 'policy.decision' AND decision = 'ask')                              AS c_asks,
                argMinIf(decision, seq, event_type = 'policy.decision')                                   AS c_first_decision,
                argMaxIf(decision, seq, event_type = 'policy.decision')                                   AS c_last_decision,
                groupUniqArrayIf(approval_id, approval_id != '')                                          AS c_approval_ids,
                countIf(event_type = 'tool_call.completed')                                               AS c_completions
            FROM events
            WHERE event_time >= subtractHours(@from, @lookback_hours) AND toDate(event_time) >= toDate(subtractHours(@from, @lookback_hours)) - 1 AND event_time < @to AND toDate(event_time) <= toDate(@to) + 1
              AND event_type IN ('tool_call.requested', 'policy.decision', 'approval.requested', 'tool_call.completed')
              -- Calls are keyed by a hash of (tenant, session, id), not the
              -- strings: a month of calls must fit the read-only profile's
              -- memory limit, and the reader may not enable external GROUP BY.
              -- Only calls that can be findings are folded in full:
              -- completed in the period, and with no decision, a deny or an
              -- ask. They are chosen first as one small set (probing the
              -- month's completions against the decided calls), so the scan
              -- of the month's call events probes only that set, not three
              -- sets of millions.
              AND cityHash64(tenant, session_id, tool_call_id) IN
                  (SELECT cityHash64(tenant, session_id, tool_call_id) FROM events
                   WHERE event_type = 'tool_call.completed' AND event_time >= @from AND toDate(event_time) >= toDate(@from) - 1 AND event_time < @to AND toDate(event_time) <= toDate(@to) + 1
                     AND (cityHash64(tenant, session_id, tool_call_id) NOT IN
                             (SELECT cityHash64(tenant, session_id, tool_call_id) FROM events
                              WHERE event_type = 'policy.decision'
                              AND event_time >= subtractHours(@from, @lookback_hours) AND toDate(event_time) >= toDate(subtractHours(@from, @lookback_hours)) - 1 AND event_time < @to AND toDate(event_time) <= toDate(@to) + 1)
                          OR cityHash64(tenant, session_id, tool_call_id) IN
                             (SELECT cityHash64(tenant, session_id, tool_call_id) FROM events
                              WHERE event_type = 'policy.decision' AND decision IN ('ask', 'deny')
                              AND event_time >= subtractHours(@from, @lookback_hours) AND toDate(event_time) >= toDate(subtractHours(@from, @lookback_hours)) - 1 AND event_time < @to AND toDate(event_time) <= toDate(@to) + 1)))
            GROUP BY call
            HAVING c_completions > 0 AND c_completed_at >= @from
        )
        LEFT ARRAY JOIN c_approval_ids AS aid
    )
    ANY LEFT JOIN
    (
        -- The decision that took effect is the first final one in its
        -- partition (the order the approvals service and the runner act
        -- on); an approval that lost to a denial or an expiry, or a
        -- partial one, approves nothing. source_offset alone orders one
        -- request's decisions: they share a partition (keyed by session).
        SELECT
            approval_id AS aid,
            if(argMin(approval_outcome, source_offset) = 'approved',
               argMin(toUInt64(event_time) * 1000000 + event_time_us, source_offset), 0) AS approved_us
        FROM events
        WHERE event_type = 'approval.decided' AND reason_code != 'needs_approval'
          AND event_time >= subtractHours(@from, @lookback_hours) AND toDate(event_time) >= toDate(subtractHours(@from, @lookback_hours)) - 1 AND event_time < @to AND toDate(event_time) <= toDate(@to) + 1
        GROUP BY approval_id
    ) USING aid
    GROUP BY call
)
WHERE decision_count = 0 OR last_decision = 'deny' OR (ask_count > 0 AND NOT approved_before)
ORDER BY completed_at, tenant, session_id, tool_call_id
