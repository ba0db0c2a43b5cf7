-- title: Denied egress by destination
-- purpose: Egress the proxy refused in the period, per destination and
--   reason: how often, from how many sessions, first and last attempt.
-- param: from DateTime  start of the period (inclusive)
-- param: to DateTime  end of the period (exclusive)
-- findings: no
-- chart: self host attempts
SELECT
    host, port, reason_code,
    count()                 AS attempts,
    uniqExact(session_id)   AS sessions,
    min(event_time)         AS first_attempt,
    max(event_time)         AS last_attempt
FROM events FINAL
WHERE event_type = 'net.egress' AND egress_phase = 'decision' AND decision = 'deny'
  AND event_time >= @from AND toDate(event_time) >= toDate(@from) - 1 AND event_time < @to AND toDate(event_time) <= toDate(@to) + 1
GROUP BY host, port, reason_code
ORDER BY attempts DESC, host, port, reason_code
