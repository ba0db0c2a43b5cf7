-- title: Alerts by rule and severity
-- purpose: Detection alerts raised in the period per rule and severity:
--   alerts, matched events, sessions, how many held their session, first
--   and last alert. Most severe first.
-- param: from DateTime  start of the period (inclusive)
-- param: to DateTime  end of the period (exclusive)
-- findings: no
-- chart: self rule_id alerts
SELECT
    rule_id, severity,
    count()                           AS alerts,
    sum(alert_count)                  AS matches,
    uniqExact(session_id)             AS sessions,
    countIf(alert_action = 'hold')    AS holds,
    min(event_time)                   AS first_alert,
    max(event_time)                   AS last_alert
FROM events FINAL
WHERE event_type = 'alert.raised' AND event_time >= @from AND event_time < @to
GROUP BY rule_id, severity
ORDER BY multiIf(severity = 'critical', 0, severity = 'high', 1, severity = 'medium', 2, severity = 'low', 3, 4),
         alerts DESC, rule_id
