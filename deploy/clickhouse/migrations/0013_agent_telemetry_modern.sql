-- min_version: 23.8
-- The agent telemetry columns of 0012 on current servers: dictionary
-- encoding for the few-valued ones, and bloom filters for the join keys
-- (an agent's call id, conversation and prompt) that the sorting key does
-- not serve.
ALTER TABLE {db}.events
    MODIFY COLUMN agent_source    LowCardinality(String),
    MODIFY COLUMN agent_event     LowCardinality(String),
    MODIFY COLUMN model           LowCardinality(String),
    MODIFY COLUMN text_mode       LowCardinality(String),
    MODIFY COLUMN agent_decision  LowCardinality(String),
    MODIFY COLUMN decision_source LowCardinality(String),
    MODIFY COLUMN approval_policy LowCardinality(String),
    MODIFY COLUMN sandbox_policy  LowCardinality(String);

ALTER TABLE {db}.events
    ADD INDEX IF NOT EXISTS idx_agent_call_id   agent_call_id   TYPE bloom_filter(0.01) GRANULARITY 4,
    ADD INDEX IF NOT EXISTS idx_conversation_id conversation_id TYPE bloom_filter(0.01) GRANULARITY 4,
    ADD INDEX IF NOT EXISTS idx_prompt_id       prompt_id       TYPE bloom_filter(0.01) GRANULARITY 4;

ALTER TABLE {db}.events MATERIALIZE INDEX idx_agent_call_id;
ALTER TABLE {db}.events MATERIALIZE INDEX idx_conversation_id;
ALTER TABLE {db}.events MATERIALIZE INDEX idx_prompt_id;
