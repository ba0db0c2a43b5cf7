-- title: Approvals with approver, decision, scope and time to decide
-- purpose: Every approval requested in the period: what was asked, who
--   decided, the decision (pending while unanswered), its scope, and the
--   seconds from request to decision. The first decision counts;
--   decision_count > 1 shows a second answer, which deserves a look.
-- param: from DateTime  start of the period (inclusive)
-- param: to DateTime  end of the period (exclusive)
-- findings: no
-- chart: self decision seconds_to_decide
SELECT
    tenant, approval_id, session_id, tool_call_id, kind, rule_id, risk, requester, summary,
    requested_at,
    if(decision_count = 0, 'pending', d_outcome)                          AS decision,
    d_scope                                                                AS scope,
    d_approver                                                             AS approver,
    if(decision_count = 0, NULL, d_decided_at)                             AS decided_at,
    if(decision_count = 0, NULL, round((d_us - request_us) / 1000000, 3)) AS seconds_to_decide,
    decision_count
FROM
(
    SELECT
        tenant, approval_id, session_id, tool_call_id, kind, rule_id, risk, requester, summary,
        event_time                                      AS requested_at,
        toUInt64(event_time) * 1000000 + event_time_us  AS request_us
    FROM events FINAL
    WHERE event_type = 'approval.requested' AND event_time >= @from AND event_time < @to
) AS r
ANY LEFT JOIN
(
    -- Decisions come after their request, so they are at or after @from.
    SELECT
        tenant, approval_id,
        argMin(approval_outcome, toUInt64(event_time) * 1000000 + event_time_us) AS d_outcome,
        argMin(approval_scope, toUInt64(event_time) * 1000000 + event_time_us)   AS d_scope,
        argMin(approver, toUInt64(event_time) * 1000000 + event_time_us)         AS d_approver,
        argMin(event_time, toUInt64(event_time) * 1000000 + event_time_us)       AS d_decided_at,
        min(toUInt64(event_time) * 1000000 + event_time_us)                      AS d_us,
        count()                                                                  AS decision_count
    FROM events FINAL
    WHERE event_type = 'approval.decided' AND event_time >= @from
      AND approval_id IN (SELECT approval_id FROM events
                          WHERE event_type = 'approval.requested' AND event_time >= @from AND event_time < @to)
    GROUP BY tenant, approval_id
) AS d USING (tenant, approval_id)
ORDER BY requested_at, approval_id
