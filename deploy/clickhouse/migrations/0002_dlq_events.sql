-- Records the ingester could not accept (undecodable, invalid against the
-- schema, unknown type), with the reason. `raw` is bounded; raw_length and
-- raw_sha256 describe the whole record so the original can still be proven.
-- Keyed by the Kafka position, so a redelivered record collapses.
CREATE TABLE IF NOT EXISTS {db}.dlq_events
(
    received_at      DateTime('UTC'),
    topic            String,
    partition        Int32,
    offset           Int64,
    key              String,
    event_id         String,
    event_type       String,
    reason           String,
    reason_code      String,
    error_pointer    String,
    raw              String,
    raw_length       UInt64,
    raw_sha256       String
)
ENGINE = ReplacingMergeTree()
PARTITION BY toYYYYMM(received_at)
ORDER BY (topic, partition, offset);
