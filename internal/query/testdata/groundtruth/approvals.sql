-- title: Approvals with approver, decision, scope and time to decide
-- purpose: Every approval requested in the period: what was asked, who
--   decided, the decision (pending while unanswered; expired when the
--   approvals service recorded the expiry or the runner recorded that it
--   stopped waiting with approval_expired), its scope, and the seconds
--   from request to decision. The decision is the first final one
--   (partial approvals of a two-person rule do not count) in the order of
--   the approvals topic's partition, which is what the approvals service
--   and the runner act on; it is not always the earliest decided_at, since
--   two service instances sign on their own clocks. decision_count > 1
--   shows a later answer that did not take effect (a losing click on
--   another instance, a second expiry), which the log keeps as a record.
-- param: from DateTime  start of the period (inclusive)
-- param: to DateTime  end of the period (exclusive)
-- findings: no
-- chart: self summary seconds_to_decide
SELECT
    tenant, approval_id, session_id, tool_call_id, kind, rule_id, risk, requester, summary,
    requested_at,
    if(decision_count > 0, d_outcome, if(x_us > 0, 'expired', 'pending'))         AS decision,
    d_scope                                                                        AS scope,
    d_approver                                                                     AS approver,
    if(decision_count > 0, d_decided_at, if(x_us > 0, x_at, NULL))                 AS decided_at,
    if(decision_count > 0, round((d_us - request_us) / 1000000, 3),
       if(x_us > 0, round((x_us - request_us) / 1000000, 3), NULL))                AS seconds_to_decide,
    decision_count
FROM
(
    SELECT
        tenant, approval_id, session_id, tool_call_id, kind, rule_id, risk, requester, summary,
        requested_at, request_us, d_outcome, d_scope, d_approver, d_decided_at, d_us, decision_count
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
            argMin(approval_outcome, (source_partition, source_offset, toUInt64(event_time) * 1000000 + event_time_us)) AS d_outcome,
            argMin(approval_scope, (source_partition, source_offset, toUInt64(event_time) * 1000000 + event_time_us))   AS d_scope,
            argMin(approver, (source_partition, source_offset, toUInt64(event_time) * 1000000 + event_time_us))         AS d_approver,
            argMin(event_time, (source_partition, source_offset, toUInt64(event_time) * 1000000 + event_time_us))       AS d_decided_at,
            argMin(toUInt64(event_time) * 1000000 + event_time_us,
                   (source_partition, source_offset, toUInt64(event_time) * 1000000 + event_time_us))                  AS d_us,
            count()                                                                                                  AS decision_count
        FROM events FINAL
        WHERE event_type = 'approval.decided' AND reason_code != 'needs_approval' AND event_time >= @from
          AND approval_id IN (SELECT approval_id FROM events
                              WHERE event_type = 'approval.requested' AND event_time >= @from AND event_time < @to)
        GROUP BY tenant, approval_id
    ) AS d USING (tenant, approval_id)
) AS rd
ANY LEFT JOIN
(
    -- The runner's own record that it stopped waiting: its decision (or
    -- egress or exec record) with reason approval_expired names the
    -- request as its approval_id or its parent event.
    SELECT tenant, approval_key AS approval_id, min(us) AS x_us, min(event_time) AS x_at
    FROM
    (
        SELECT
            tenant,
            if(approval_id != '', approval_id, toString(parent_event_id)) AS approval_key,
            event_time,
            toUInt64(event_time) * 1000000 + event_time_us                 AS us
        FROM events FINAL
        WHERE event_type IN ('policy.decision', 'net.egress', 'process.exec')
          AND reason_code = 'approval_expired' AND event_time >= @from
    )
    GROUP BY tenant, approval_key
) AS x USING (tenant, approval_id)
ORDER BY requested_at, approval_id
