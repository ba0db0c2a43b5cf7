-- Views for compliance. Each reads `events FINAL` so a redelivered event
-- counts once, and folds the events of one thing (a tool call, an approval,
-- a session) into one row with -If aggregates: no window functions, which
-- the oldest supported server lacks. Timestamps are whole seconds; the
-- microseconds live in events.event_time_us.

CREATE VIEW IF NOT EXISTS {db}.approvals AS
SELECT
    tenant,
    approval_id,
    anyIf(session_id, event_type = 'approval.requested')          AS session_id,
    anyIf(tool_call_id, tool_call_id != '')                       AS tool_call_id,
    anyIf(kind, event_type = 'approval.requested')                AS kind,
    anyIf(summary, event_type = 'approval.requested')             AS summary,
    anyIf(reason, event_type = 'approval.requested')              AS reason,
    anyIf(reason_code, event_type = 'approval.requested')         AS request_reason_code,
    anyIf(rule_id, event_type = 'approval.requested')             AS rule_id,
    anyIf(risk, event_type = 'approval.requested')                AS risk,
    anyIf(requester, event_type = 'approval.requested')           AS requester,
    minIf(event_time, event_type = 'approval.requested')          AS requested_at,
    anyIf(expires_at, event_type = 'approval.requested')          AS expires_at,
    minIf(event_id, event_type = 'approval.requested')            AS request_event_id,
    -- The first decision is the one that counts; `decisions` > 1 shows a
    -- second answer, which compliance should look at.
    argMinIf(approval_outcome, event_id, event_type = 'approval.decided') AS outcome,
    argMinIf(approval_scope, event_id, event_type = 'approval.decided')   AS scope,
    argMinIf(approver, event_id, event_type = 'approval.decided')         AS approver,
    argMinIf(decided_at, event_id, event_type = 'approval.decided')       AS decided_at,
    argMinIf(reason_code, event_id, event_type = 'approval.decided')      AS decision_reason_code,
    argMinIf(key_id, event_id, event_type = 'approval.decided')           AS key_id,
    minIf(event_id, event_type = 'approval.decided')              AS decision_event_id,
    countIf(event_type = 'approval.decided')                      AS decisions,
    if(decisions = 0, 'pending', outcome)                         AS status
FROM {db}.events FINAL
WHERE approval_id != '' AND event_type IN ('approval.requested', 'approval.decided')
GROUP BY tenant, approval_id;

-- One row per tool call: the request, the policy's first and final decision
-- (an ask is followed by a second decision once an approval arrives), the
-- approval and the outcome.
CREATE VIEW IF NOT EXISTS {db}.tool_calls AS
SELECT
    tenant, session_id, tool_call_id,
    any_runner_id AS runner_id, req_agent_name AS agent_name, req_actor_id AS actor_id,
    requested_at, request_event_id,
    req_tool_name AS tool_name, req_command AS command, req_cwd AS cwd, req_path AS path,
    req_url AS url, req_arguments_sha256 AS arguments_sha256,
    initial_decision, final_decision AS decision, final_reason_code AS reason_code,
    final_rule_id AS rule_id, final_approval_mode AS approval_mode, final_risk AS risk,
    final_policy_id AS policy_id, final_policy_sha256 AS policy_sha256,
    policy_decided_at AS decided_at,
    approval_id, approval_status, approval_scope, approver, approval_decided_at,
    done_exit_code AS exit_code, done_duration_ms AS duration_ms, done_timed_out AS timed_out,
    done_killed_reason AS killed_reason, outcome_reason_code, done_error AS error,
    done_stdout_length AS stdout_length, done_stderr_length AS stderr_length,
    completed_at, completions,
    multiIf(completions > 0, 'completed',
            final_decision = 'deny', 'denied',
            final_decision = 'ask', 'awaiting_approval',
            final_decision = 'allow', 'running',
            'requested') AS status
FROM
(
    SELECT
        tenant, session_id, tool_call_id,
        any(runner_id)                                                   AS any_runner_id,
        anyIf(agent_name, event_type = 'tool_call.requested')            AS req_agent_name,
        anyIf(actor_id, event_type = 'tool_call.requested')              AS req_actor_id,
        minIf(event_time, event_type = 'tool_call.requested')            AS requested_at,
        minIf(event_id, event_type = 'tool_call.requested')              AS request_event_id,
        anyIf(tool_name, event_type = 'tool_call.requested')             AS req_tool_name,
        anyIf(command, event_type = 'tool_call.requested')               AS req_command,
        anyIf(cwd, event_type = 'tool_call.requested')                   AS req_cwd,
        anyIf(path, event_type = 'tool_call.requested')                  AS req_path,
        anyIf(url, event_type = 'tool_call.requested')                   AS req_url,
        anyIf(arguments_sha256, event_type = 'tool_call.requested')      AS req_arguments_sha256,
        argMinIf(decision, seq, event_type = 'policy.decision')          AS initial_decision,
        argMaxIf(decision, seq, event_type = 'policy.decision')          AS final_decision,
        argMaxIf(reason_code, seq, event_type = 'policy.decision')       AS final_reason_code,
        argMaxIf(rule_id, seq, event_type = 'policy.decision')           AS final_rule_id,
        argMaxIf(approval_mode, seq, event_type = 'policy.decision')     AS final_approval_mode,
        argMaxIf(risk, seq, event_type = 'policy.decision')              AS final_risk,
        argMaxIf(policy_id, seq, event_type = 'policy.decision')         AS final_policy_id,
        argMaxIf(policy_sha256, seq, event_type = 'policy.decision')     AS final_policy_sha256,
        maxIf(event_time, event_type = 'policy.decision')                AS policy_decided_at,
        argMaxIf(approval_id, seq, approval_id != '')                    AS approval_id,
        argMaxIf(exit_code, seq, event_type = 'tool_call.completed')     AS done_exit_code,
        argMaxIf(duration_ms, seq, event_type = 'tool_call.completed')   AS done_duration_ms,
        argMaxIf(timed_out, seq, event_type = 'tool_call.completed')     AS done_timed_out,
        argMaxIf(killed_reason, seq, event_type = 'tool_call.completed') AS done_killed_reason,
        argMaxIf(reason_code, seq, event_type = 'tool_call.completed')   AS outcome_reason_code,
        argMaxIf(error, seq, event_type = 'tool_call.completed')         AS done_error,
        argMaxIf(stdout_length, seq, event_type = 'tool_call.completed') AS done_stdout_length,
        argMaxIf(stderr_length, seq, event_type = 'tool_call.completed') AS done_stderr_length,
        maxIf(event_time, event_type = 'tool_call.completed')            AS completed_at,
        countIf(event_type = 'tool_call.completed')                      AS completions
    FROM {db}.events FINAL
    WHERE tool_call_id != ''
      AND event_type IN ('tool_call.requested', 'policy.decision', 'approval.requested',
                         'approval.decided', 'tool_call.completed')
    GROUP BY tenant, session_id, tool_call_id
) AS calls
ANY LEFT JOIN
(
    -- Approvals are joined by id, not by session: the decision is written
    -- by the approvals service, which need not repeat the tool call id.
    SELECT
        tenant, approval_id,
        status     AS approval_status,
        scope      AS approval_scope,
        approver,
        decided_at AS approval_decided_at
    FROM {db}.approvals
) AS decided USING (tenant, approval_id);

CREATE VIEW IF NOT EXISTS {db}.egress AS
SELECT
    event_id, tenant, session_id, runner_id, tool_call_id, approval_id, parent_event_id,
    event_time, event_time_us, egress_phase AS phase, host, port, resolved_ip, method, sni,
    decision, reason_code, rule_id, status_code, bytes_sent, bytes_received, duration_ms,
    policy_id, policy_sha256
FROM {db}.events FINAL
WHERE event_type = 'net.egress';

CREATE VIEW IF NOT EXISTS {db}.alerts AS
SELECT
    event_id, tenant, session_id, event_time, event_time_us,
    rule_id, rule_version, severity, group_key, alert_count AS count, suppressed,
    first_seen, last_seen, matched_event_ids, summary AS message, alert_action AS action,
    actor_id
FROM {db}.events FINAL
WHERE event_type = 'alert.raised';

-- One row per session: how it started and ended, and what happened in it.
CREATE VIEW IF NOT EXISTS {db}.sessions AS
SELECT
    tenant, session_id,
    any(runner_id)                                                  AS runner_id,
    anyIf(agent_name, event_type = 'session.started')               AS agent_name,
    anyIf(agent_version, event_type = 'session.started')            AS agent_version,
    anyIf(operator, event_type = 'session.started')                 AS operator,
    anyIf(workspace, event_type = 'session.started')                AS workspace,
    anyIf(image, event_type = 'session.started')                    AS image,
    anyIf(sandbox_profile, event_type = 'session.started')          AS sandbox_profile,
    anyIf(sandbox_profile_sha256, event_type = 'session.started')   AS sandbox_profile_sha256,
    anyIf(mode, event_type = 'session.started')                     AS mode,
    anyIf(client_name, event_type = 'session.started')              AS client_name,
    minIf(event_time, event_type = 'session.started')               AS started_at,
    maxIf(event_time, event_type = 'session.ended')                 AS ended_at,
    anyIf(reason, event_type = 'session.ended')                     AS end_reason,
    countIf(event_type = 'tool_call.requested')                     AS tool_calls,
    countIf(event_type = 'policy.decision' AND decision = 'deny')   AS denials,
    countIf(event_type = 'approval.requested')                      AS approvals_requested,
    countIf(event_type = 'net.egress' AND egress_phase = 'decision') AS egress_decisions,
    countIf(event_type = 'sandbox.violation')                       AS violations,
    countIf(event_type = 'alert.raised')                            AS alerts,
    countIf(event_type = 'session.held')                            AS holds,
    count()                                                         AS events,
    max(seq)                                                        AS last_seq
FROM {db}.events FINAL
GROUP BY tenant, session_id;
