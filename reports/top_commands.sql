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
-- that a month of calls fits the read-only profile's memory. Whole UTC
-- days come from call_folds (migration 0016: per call and day, the same
-- folds as aggregate states filled at insert); the partial days at either
-- end of the period come from events, folded into the same states. The
-- command strings are looked up once per distinct command.
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
        -- aggregates; argMin/argMax states double the time). A first code
        -- of the largest UInt64 means the call had no decision.
        SELECT
            call,
            maxIfMerge(s_cmd)                                                    AS cmd_key,
            if(minMerge(s_first) = 18446744073709551615, 0, minMerge(s_first) % 4) AS first_d,
            maxIfMerge(s_final) % 4                                              AS final_d,
            maxIfMerge(s_done)                                                   AS done,
            maxIfMerge(s_requested)                                              AS requested
        FROM
        (
            SELECT call, cmd_key AS s_cmd, first_code AS s_first, final_code AS s_final, done AS s_done, requested AS s_requested
            FROM call_folds
            -- The days that lie wholly inside [@from, @to).
            WHERE day >= toDate(toTimeZone(@from, 'UTC')) + (toStartOfDay(toTimeZone(@from, 'UTC')) < @from) AND day < toDate(toTimeZone(@to, 'UTC'))
            UNION ALL
            SELECT
                cityHash64(tenant, session_id, tool_call_id)                                           AS call,
                maxIfState(cityHash64(tool_name, command), event_type = 'tool_call.requested')         AS s_cmd,
                minState(if(event_type = 'policy.decision',
                            seq * 4 + multiIf(decision = 'allow', 1, decision = 'ask', 2, decision = 'deny', 3, 0),
                            18446744073709551615))                                                     AS s_first,
                maxIfState(seq * 4 + multiIf(decision = 'allow', 1, decision = 'ask', 2, decision = 'deny', 3, 0),
                           event_type = 'policy.decision')                                             AS s_final,
                maxIfState(toUInt8(1), event_type = 'tool_call.completed')                             AS s_done,
                maxIfState(toUInt8(1), event_type = 'tool_call.requested')                             AS s_requested
            FROM events
            -- The rest of the period: the part of the first day from @from
            -- and of the last day up to @to (all of it when the period is
            -- within one day).
            WHERE event_time >= @from AND toDate(event_time) >= toDate(@from) - 1 AND event_time < @to AND toDate(event_time) <= toDate(@to) + 1
              AND (toDate(event_time) < toDate(toTimeZone(@from, 'UTC')) + (toStartOfDay(toTimeZone(@from, 'UTC')) < @from) OR toDate(event_time) >= toDate(toTimeZone(@to, 'UTC')))
              AND tool_call_id != '' AND event_type IN ('tool_call.requested', 'policy.decision', 'tool_call.completed')
            GROUP BY call
        )
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
