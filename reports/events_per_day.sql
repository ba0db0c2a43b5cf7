-- title: Events per day
-- purpose: How many events were recorded on each day of the period (UTC).
-- param: from DateTime  start of the period (inclusive)
-- param: to DateTime  end of the period (exclusive)
-- findings: no
-- chart: self day event_count
-- Whole UTC days come from activity_sessions (migration 0015: per session
-- and day, the set of the session's (event_id, hash) that day, filled at
-- insert); the partial days at either end of the period come from events,
-- folded into the same sets. No FINAL: a redelivered event not yet merged
-- is one member of its session's set, in events or in the states, and
-- each session's count per day is summed (see deploy/clickhouse/README.md).
SELECT day, sum(n) AS event_count
FROM
(
    SELECT day, uniqExactMerge(s_events) AS n
    FROM
    (
        SELECT tenant, day, session_id, events AS s_events
        FROM activity_sessions
        -- The days that lie wholly inside [@from, @to).
        WHERE day >= toDate(toTimeZone(@from, 'UTC')) + (toStartOfDay(toTimeZone(@from, 'UTC')) < @from) AND day < toDate(toTimeZone(@to, 'UTC'))
        UNION ALL
        SELECT tenant, toDate(event_time) AS day, session_id, uniqExactState(cityHash64(event_id, hash)) AS s_events
        FROM events
        -- The rest of the period: the part of the first day from @from and
        -- of the last day up to @to (all of it within one day).
        WHERE event_time >= @from AND toDate(event_time) >= toDate(@from) - 1 AND event_time < @to AND toDate(event_time) <= toDate(@to) + 1
          AND (toDate(event_time) < toDate(toTimeZone(@from, 'UTC')) + (toStartOfDay(toTimeZone(@from, 'UTC')) < @from) OR toDate(event_time) >= toDate(toTimeZone(@to, 'UTC')))
        GROUP BY tenant, day, session_id
    )
    GROUP BY day, tenant, session_id
)
GROUP BY day
ORDER BY day
