-- min_version: 23.8
-- Skip indexes for the lookups the sorting key does not serve: by event id
-- (snowflake ids grow with time, so min/max prunes well), by correlation
-- id, and by egress destination.
ALTER TABLE {db}.events
    ADD INDEX IF NOT EXISTS idx_event_id     event_id     TYPE minmax GRANULARITY 1,
    ADD INDEX IF NOT EXISTS idx_tool_call_id tool_call_id TYPE bloom_filter(0.01) GRANULARITY 4,
    ADD INDEX IF NOT EXISTS idx_approval_id  approval_id  TYPE bloom_filter(0.01) GRANULARITY 4,
    ADD INDEX IF NOT EXISTS idx_trace_id     trace_id     TYPE bloom_filter(0.01) GRANULARITY 4,
    ADD INDEX IF NOT EXISTS idx_host         host         TYPE bloom_filter(0.01) GRANULARITY 4;

-- Build them for parts written before this migration.
ALTER TABLE {db}.events MATERIALIZE INDEX idx_event_id;
ALTER TABLE {db}.events MATERIALIZE INDEX idx_tool_call_id;
ALTER TABLE {db}.events MATERIALIZE INDEX idx_approval_id;
ALTER TABLE {db}.events MATERIALIZE INDEX idx_trace_id;
ALTER TABLE {db}.events MATERIALIZE INDEX idx_host;
