-- process.exec and the supervisor's fields: the columns they flatten into,
-- a view of every exec, and exec counts in `sessions`.
--
-- The 18.16 server has no ADD COLUMN IF NOT EXISTS, so each column is added
-- by a statement of its own, and the migration runner counts "column
-- already exists" from such a statement as done: a rerun after a failure
-- further down this file goes through. The new columns follow the
-- flattened payload columns (before raw), in store.EventColumns' order.
--
--   pid, ppid       process.exec; pid also sandbox.violation
--   exe             process.exec: resolved executable path
--   background      process.exec: made by a process that outlived its call
--   root_process    process.exec: the call's own top process (payload `root`)
--   signal          tool_call.completed: signal that ended the call
--   user_ms, system_ms, max_rss_kb
--                   tool_call.completed: rusage
--   process_count   processes involved: sandbox.violation `count`,
--                   tool_call.completed `leftovers_killed`
--
-- The argv of an exec or of a violation's process goes to `command`,
-- shell-quoted like a tool call's, and its cwd to `cwd`.
ALTER TABLE {db}.events ADD COLUMN pid UInt32 AFTER client_name;
ALTER TABLE {db}.events ADD COLUMN ppid UInt32 AFTER pid;
ALTER TABLE {db}.events ADD COLUMN exe String AFTER ppid;
ALTER TABLE {db}.events ADD COLUMN background UInt8 AFTER exe;
ALTER TABLE {db}.events ADD COLUMN root_process UInt8 AFTER background;
ALTER TABLE {db}.events ADD COLUMN signal UInt8 AFTER root_process;
ALTER TABLE {db}.events ADD COLUMN user_ms UInt64 AFTER signal;
ALTER TABLE {db}.events ADD COLUMN system_ms UInt64 AFTER user_ms;
ALTER TABLE {db}.events ADD COLUMN max_rss_kb UInt64 AFTER system_ms;
ALTER TABLE {db}.events ADD COLUMN process_count UInt64 AFTER max_rss_kb;

-- Every program started in a sandbox, with the runner's verdict on it.
CREATE VIEW IF NOT EXISTS {db}.execs AS
SELECT
    event_id, tenant, session_id, runner_id, tool_call_id, approval_id, parent_event_id,
    event_time, event_time_us, pid, ppid, exe, command, cwd,
    decision, reason_code, rule_id, background, root_process, policy_id, policy_sha256
FROM {db}.events FINAL
WHERE event_type = 'process.exec';

-- `sessions` as in 0004, with the session's execs and denied execs. The
-- 18.16 server has no DROP VIEW; DROP TABLE drops a view on every server.
DROP TABLE IF EXISTS {db}.sessions;

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
    max(seq)                                                        AS last_seq,
    countIf(event_type = 'process.exec')                            AS execs,
    countIf(event_type = 'process.exec' AND decision = 'deny')      AS execs_denied
FROM {db}.events FINAL
GROUP BY tenant, session_id;
