-- title: Rule precision from alert triage
-- purpose: Per detection rule, the alerts raised in the period and what
--   analysts judged them (alert.triaged, signed by the approvals service):
--   true and false positives by each alert's latest verdict, precision
--   tp / (tp + fp) (empty until one is judged), how many were triaged at
--   all, and the median seconds from an alert to its first triage action.
--   Triage after the period counts. Noisiest rules first.
-- param: from DateTime  start of the period (inclusive)
-- param: to DateTime  end of the period (exclusive)
-- findings: no
-- chart: self rule_id fp
SELECT
    rule_id,
    count()                                              AS alerts,
    countIf(verdict = 'true_positive')                   AS tp,
    countIf(verdict = 'false_positive')                  AS fp,
    if(tp + fp = 0, NULL, round(tp / (tp + fp), 3))      AS precision,
    countIf(is_triaged = 1)                              AS triaged,
    if(triaged = 0, NULL,
       round(medianIf(toInt64(first_triage) - toInt64(raised_at), is_triaged = 1), 1)) AS median_seconds_to_triage
FROM
(
    SELECT event_id AS alert_id, rule_id, event_time AS raised_at
    FROM events FINAL
    WHERE event_type = 'alert.raised' AND event_time >= @from AND event_time < @to
)
ANY LEFT JOIN
(
    SELECT
        ref_event_id                                     AS alert_id,
        toUInt8(1)                                       AS is_triaged,
        min(decided_at)                                  AS first_triage,
        argMaxIf(triage_action, decided_at,
                 triage_action IN ('true_positive', 'false_positive')) AS verdict
    FROM events FINAL
    WHERE event_type = 'alert.triaged'
    GROUP BY ref_event_id
) USING alert_id
GROUP BY rule_id
ORDER BY fp DESC, alerts DESC, rule_id
