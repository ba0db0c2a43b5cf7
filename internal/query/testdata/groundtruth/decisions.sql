-- title: Decisions by type
-- purpose: Policy decisions on tool calls and egress decisions of the proxy
--   in the period, per verdict.
-- param: from DateTime  start of the period (inclusive)
-- param: to DateTime  end of the period (exclusive)
-- findings: no
-- chart: self decision_type decisions
SELECT
    concat(if(event_type = 'policy.decision', 'tool call ', 'egress '), decision) AS decision_type,
    count() AS decisions
FROM events FINAL
WHERE event_time >= @from AND event_time < @to
  AND (event_type = 'policy.decision' OR (event_type = 'net.egress' AND egress_phase = 'decision'))
GROUP BY decision_type
ORDER BY decision_type
