-- title: Most frequent commands and their decisions
-- purpose: Tool calls requested in the period, grouped by tool and command,
--   with how the policy first and finally decided them and how many ran.
-- param: from DateTime  start of the period (inclusive)
-- param: to DateTime  end of the period (exclusive)
-- param: limit UInt64 = 50  how many commands to list
-- findings: no
-- chart: self command calls
-- Two phases, no FINAL. Each call is folded into a few numbers (its
-- command's hash, first and final decision as codes, whether it ran):
-- every fold is unchanged when a row is stored twice, and small enough
-- that a month of calls fits the read-only profile's memory. The command
-- strings are looked up once per distinct command.
SELECT s_tool AS tool_name, s_command AS command, calls, allowed, asked, denied, executed
FROM
(
    SELECT
        cmd_key,
        count()                         AS calls,
        countIf(final_d = 1)            AS allowed,
        countIf(first_d = 2)            AS asked,
        countIf(final_d = 3)            AS denied,
        countIf(done = 1)               AS executed
    FROM
    (
        -- First and final decision: min and max of seq * 4 + code, whose
        -- low two bits are the decision (plain min/max are the cheapest
        -- aggregates; argMin/argMax states double the time).
        SELECT
            cityHash64(tenant, session_id, tool_call_id)                                   AS call,
            maxIf(cityHash64(tool_name, command), event_type = 'tool_call.requested')       AS cmd_key,
            minIf(seq * 4 + multiIf(decision = 'allow', 1, decision = 'ask', 2, decision = 'deny', 3, 0),
                  event_type = 'policy.decision') % 4                                       AS first_d,
            maxIf(seq * 4 + multiIf(decision = 'allow', 1, decision = 'ask', 2, decision = 'deny', 3, 0),
                  event_type = 'policy.decision') % 4                                       AS final_d,
            maxIf(toUInt8(1), event_type = 'tool_call.completed')                           AS done,
            maxIf(toUInt8(1), event_type = 'tool_call.requested')                           AS requested
        FROM events
        WHERE event_time >= @from AND toDate(event_time) >= toDate(@from) - 1 AND event_time < @to AND toDate(event_time) <= toDate(@to) + 1 AND tool_call_id != ''
          AND event_type IN ('tool_call.requested', 'policy.decision', 'tool_call.completed')
        GROUP BY call
        HAVING requested = 1
    )
    GROUP BY cmd_key
) AS c
ANY LEFT JOIN
(
    SELECT cityHash64(tool_name, command) AS cmd_key, any(tool_name) AS s_tool, any(command) AS s_command
    FROM events
    WHERE event_type = 'tool_call.requested' AND event_time >= @from AND toDate(event_time) >= toDate(@from) - 1 AND event_time < @to AND toDate(event_time) <= toDate(@to) + 1 AND tool_call_id != ''
    GROUP BY cmd_key
) AS s USING (cmd_key)
ORDER BY calls DESC, tool_name, command
LIMIT @limit
