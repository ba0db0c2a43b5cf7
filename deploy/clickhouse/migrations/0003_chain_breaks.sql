-- Hash-chain and sequence anomalies the ingester found, one row per
-- (chain, event, kind). kind is gap, reorder, edit, wrong_prev or
-- duplicate_seq. Partitioned by the offending event's time so retention
-- drops breaks together with the events they are about.
CREATE TABLE IF NOT EXISTS {db}.chain_breaks
(
    detected_at        DateTime('UTC'),
    event_time         DateTime('UTC'),
    tenant             String,
    session_id         String,
    runner_id          String,
    kind               String,
    event_id           UInt64,
    expected_seq       UInt64,
    got_seq            UInt64,
    expected_prev_hash String,
    got_prev_hash      String,
    detail             String,
    source_topic       String,
    source_partition   Int32,
    source_offset      Int64
)
ENGINE = ReplacingMergeTree()
PARTITION BY toYYYYMM(event_time)
ORDER BY (tenant, session_id, runner_id, event_id, kind);
