-- title: Events per day
-- purpose: How many events were recorded on each day of the period (UTC).
-- param: from DateTime  start of the period (inclusive)
-- param: to DateTime  end of the period (exclusive)
-- findings: no
-- chart: self day event_count
-- No FINAL: duplicates (a redelivered event not yet merged) are counted
-- once by counting distinct (event_id, hash) per session and day, small
-- sets, and summing the sessions (see deploy/clickhouse/README.md).
SELECT day, sum(n) AS event_count
FROM
(
    SELECT toDate(event_time) AS day, uniqExact(cityHash64(event_id, hash)) AS n
    FROM events
    WHERE event_time >= @from AND toDate(event_time) >= toDate(@from) - 1 AND event_time < @to AND toDate(event_time) <= toDate(@to) + 1
    GROUP BY day, tenant, session_id
)
GROUP BY day
ORDER BY day
