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
-- Two phases. The IN subquery finds the finding calls' keys from numbers
-- and approval ids alone; the outer query then folds those few calls
-- again for what a finding shows (the tenant, session and call ids, the
-- command). A month's candidate calls are hundreds of thousands, and
-- carrying their strings through the fold cost more than the second
-- read of the few. On a cluster the whole subquery runs on each shard
-- against its local tables (distributed_product_mode = 'local'): a
-- call's events and its approvals' decisions live on its session's
-- shard, so no shard needs another's rows, and only the findings' keys
-- travel. See deploy/clickhouse/README.md.
SELECT
    any(tenant)                                                                     AS tenant,
    any(session_id)                                                                 AS session_id,
    any(tool_call_id)                                                               AS tool_call_id,
    minIf(event_time, event_type = 'tool_call.completed')                           AS completed_at,
    anyIf(command, event_type = 'tool_call.requested')                              AS command,
    argMinIf(decision, seq, event_type = 'policy.decision')                         AS first_decision,
    argMaxIf(decision, seq, event_type = 'policy.decision')                         AS last_decision,
    groupUniqArrayIf(approval_id, approval_id != '')                                AS approval_ids,
    multiIf(countIf(event_type = 'policy.decision') = 0, 'no_policy_decision',
            last_decision = 'deny', 'executed_after_deny',
            'ask_without_approval')                                                 AS finding
FROM events
WHERE event_time >= subtractHours(@from, @lookback_hours) AND toDate(event_time) >= toDate(subtractHours(@from, @lookback_hours)) - 1 AND event_time < @to AND toDate(event_time) <= toDate(@to) + 1
  AND event_type IN ('tool_call.requested', 'policy.decision', 'approval.requested', 'tool_call.completed')
  AND call_key IN
(
    SELECT call
    FROM
    (
        SELECT
            call,
            any(c_decisions)        AS decision_count,
            any(c_asks)             AS ask_count,
            any(c_last_decision)    AS last_decision,
            max(approved_us != 0 AND approved_us <= c_completed_us) AS approved_before
        FROM
        (
            SELECT call, c_completed_us, c_decisions, c_asks, c_last_decision, aid
            FROM
            (
                SELECT
                    call_key                                                                                  AS call,
                    minIf(event_time, event_type = 'tool_call.completed')                                     AS c_completed_at,
                    minIf(toUInt64(event_time) * 1000000 + event_time_us, event_type = 'tool_call.completed') AS c_completed_us,
                    countIf(event_type = 'policy.decision')                                                   AS c_decisions,
                    countIf(event_type = 'policy.decision' AND decision = 'ask')                              AS c_asks,
                    argMaxIf(decision, seq, event_type = 'policy.decision')                                   AS c_last_decision,
                    groupUniqArrayIf(approval_id, approval_id != '')                                          AS c_approval_ids,
                    countIf(event_type = 'tool_call.completed')                                               AS c_completions
                FROM events
                WHERE event_time >= subtractHours(@from, @lookback_hours) AND toDate(event_time) >= toDate(subtractHours(@from, @lookback_hours)) - 1 AND event_time < @to AND toDate(event_time) <= toDate(@to) + 1
                  AND event_type IN ('tool_call.requested', 'policy.decision', 'approval.requested', 'tool_call.completed')
                  -- Calls are keyed by call_key (migration 0017), a hash of
                  -- (tenant, session, id), not the strings: a month of calls
                  -- must fit the read-only profile's memory limit, and the
                  -- reader may not enable external GROUP BY.
                  -- Only calls that can be findings are folded: completed in
                  -- the period, and with no decision, a deny or an ask. They
                  -- are chosen first as one small set (probing the month's
                  -- completions against the decided calls), so the scan of
                  -- the month's call events probes only that set, not three
                  -- sets of millions.
                  AND call_key IN
                      (SELECT call_key FROM events
                       WHERE event_type = 'tool_call.completed' AND event_time >= @from AND toDate(event_time) >= toDate(@from) - 1 AND event_time < @to AND toDate(event_time) <= toDate(@to) + 1
                         AND (call_key NOT IN
                                 (SELECT call_key FROM events
                                  WHERE event_type = 'policy.decision' AND event_time >= subtractHours(@from, @lookback_hours) AND toDate(event_time) >= toDate(subtractHours(@from, @lookback_hours)) - 1 AND event_time < @to AND toDate(event_time) <= toDate(@to) + 1)
                              OR call_key IN
                                 (SELECT call_key FROM events
                                  WHERE event_type = 'policy.decision' AND decision IN ('ask', 'deny') AND event_time >= subtractHours(@from, @lookback_hours) AND toDate(event_time) >= toDate(subtractHours(@from, @lookback_hours)) - 1 AND event_time < @to AND toDate(event_time) <= toDate(@to) + 1)))
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
            WHERE event_type = 'approval.decided' AND reason_code != 'needs_approval' AND event_time >= subtractHours(@from, @lookback_hours) AND toDate(event_time) >= toDate(subtractHours(@from, @lookback_hours)) - 1 AND event_time < @to AND toDate(event_time) <= toDate(@to) + 1
            GROUP BY approval_id
        ) USING aid
        GROUP BY call
    )
    WHERE decision_count = 0 OR last_decision = 'deny' OR (ask_count > 0 AND NOT approved_before)
)
GROUP BY call_key
ORDER BY completed_at, tenant, session_id, tool_call_id
