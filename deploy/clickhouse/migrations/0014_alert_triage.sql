-- Alert triage: the columns alert.triaged, rule.suppressed and
-- rule.unsuppressed flatten into, and a view of the triage actions.
--
-- One column per statement (18.16 has no ADD COLUMN IF NOT EXISTS; the
-- migration runner counts "already exists" as done), after
-- sandbox_policy, in store.EventColumns' order.
--
--   triage_action  alert.triaged: acknowledge, assign, true_positive,
--                  false_positive or comment
--   assignee       alert.triaged (assign): who the alert is assigned to
--   scope_kind     rule.suppressed: tenant, session, agent or group_key
--   scope_value    rule.suppressed: the tenant, session id, agent name or
--                  group key suppressed
--
-- Existing columns these events also fill: rule_id; reason (the comment);
-- by_id (the analyst); ref_event_id (the alert.raised triaged or that
-- prompted a suppression, the rule.suppressed lifted); decided_at (when
-- the analyst acted); expires_at (when a suppression ends); key_id (the
-- approvals service's signing key).
ALTER TABLE {db}.events ADD COLUMN triage_action String AFTER sandbox_policy;
ALTER TABLE {db}.events ADD COLUMN assignee String AFTER triage_action;
ALTER TABLE {db}.events ADD COLUMN scope_kind String AFTER assignee;
ALTER TABLE {db}.events ADD COLUMN scope_value String AFTER scope_kind;
