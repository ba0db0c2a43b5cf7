-- title: Most frequent commands and their decisions
-- purpose: Tool calls requested in the period, grouped by tool and command,
--   with how the policy first and finally decided them and how many ran.
-- param: from DateTime  start of the period (inclusive)
-- param: to DateTime  end of the period (exclusive)
-- param: limit UInt64 = 50  how many commands to list
-- findings: no
-- chart: self command calls
SELECT
    tn                              AS tool_name,
    cmd                             AS command,
    count()                         AS calls,
    countIf(final_d = 'allow')      AS allowed,
    countIf(first_d = 'ask')        AS asked,
    countIf(final_d = 'deny')       AS denied,
    countIf(done)                   AS executed
FROM
(
    SELECT
        anyIf(tool_name, event_type = 'tool_call.requested')      AS tn,
        anyIf(command, event_type = 'tool_call.requested')        AS cmd,
        argMinIf(decision, seq, event_type = 'policy.decision')   AS first_d,
        argMaxIf(decision, seq, event_type = 'policy.decision')   AS final_d,
        countIf(event_type = 'tool_call.completed') > 0           AS done,
        countIf(event_type = 'tool_call.requested')               AS requests
    FROM events FINAL
    WHERE event_time >= @from AND event_time < @to AND tool_call_id != ''
      AND event_type IN ('tool_call.requested', 'policy.decision', 'tool_call.completed')
    -- A hash of the call's key instead of its three strings: over a month
    -- of events the per-call states must fit the read-only profile's
    -- memory limit, and the reader may not enable external GROUP BY.
    GROUP BY cityHash64(tenant, session_id, tool_call_id)
    HAVING requests > 0
)
GROUP BY tn, cmd
ORDER BY calls DESC, tool_name, command
LIMIT @limit
