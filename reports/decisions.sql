-- title: Decisions by type
-- purpose: Policy decisions on tool calls and egress decisions of the proxy
--   in the period, per verdict.
-- param: from DateTime  start of the period (inclusive)
-- param: to DateTime  end of the period (exclusive)
-- findings: no
-- chart: self decision_type decisions
-- No FINAL: distinct (event_id, hash) per session, summed (see
-- events_per_day).
SELECT decision_type, sum(n) AS decisions
FROM
(
    SELECT
        concat(if(event_type = 'policy.decision', 'tool call ', 'egress '), decision) AS decision_type,
        uniqExact(cityHash64(event_id, hash)) AS n
    FROM events
    WHERE event_time >= @from AND toDate(event_time) >= toDate(@from) - 1 AND event_time < @to AND toDate(event_time) <= toDate(@to) + 1
      AND (event_type = 'policy.decision' OR (event_type = 'net.egress' AND egress_phase = 'decision'))
    GROUP BY decision_type, tenant, session_id
)
GROUP BY decision_type
ORDER BY decision_type
