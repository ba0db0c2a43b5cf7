-- min_version: 23.8
-- Dictionary-encode the columns with few distinct values. 18.16 has
-- LowCardinality only behind an experimental setting that current servers
-- reject, so it is an enhancement, not part of the core.
ALTER TABLE {db}.events
    MODIFY COLUMN event_type     LowCardinality(String),
    MODIFY COLUMN tenant         LowCardinality(String),
    MODIFY COLUMN schema_version LowCardinality(String),
    MODIFY COLUMN runner_id      LowCardinality(String),
    MODIFY COLUMN actor_type     LowCardinality(String),
    MODIFY COLUMN agent_name     LowCardinality(String),
    MODIFY COLUMN agent_version  LowCardinality(String),
    MODIFY COLUMN policy_id      LowCardinality(String),
    MODIFY COLUMN tool_name      LowCardinality(String),
    MODIFY COLUMN decision       LowCardinality(String),
    MODIFY COLUMN reason_code    LowCardinality(String),
    MODIFY COLUMN rule_id        LowCardinality(String),
    MODIFY COLUMN approval_mode  LowCardinality(String),
    MODIFY COLUMN risk           LowCardinality(String),
    MODIFY COLUMN kind           LowCardinality(String),
    MODIFY COLUMN approval_outcome LowCardinality(String),
    MODIFY COLUMN approval_scope LowCardinality(String),
    MODIFY COLUMN egress_phase   LowCardinality(String),
    MODIFY COLUMN method         LowCardinality(String),
    MODIFY COLUMN killed_reason  LowCardinality(String),
    MODIFY COLUMN syscall        LowCardinality(String),
    MODIFY COLUMN severity       LowCardinality(String),
    MODIFY COLUMN alert_action   LowCardinality(String),
    MODIFY COLUMN mode           LowCardinality(String),
    MODIFY COLUMN source_topic   LowCardinality(String);

ALTER TABLE {db}.dlq_events
    MODIFY COLUMN event_type  LowCardinality(String),
    MODIFY COLUMN reason_code LowCardinality(String);

ALTER TABLE {db}.chain_breaks
    MODIFY COLUMN kind LowCardinality(String);
