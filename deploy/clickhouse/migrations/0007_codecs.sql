-- min_version: 23.8
-- Compression codecs for the bulky and the monotonic columns.
ALTER TABLE {db}.events
    MODIFY COLUMN raw         String CODEC(ZSTD(3)),
    MODIFY COLUMN command     String CODEC(ZSTD(1)),
    MODIFY COLUMN prev_hash   String CODEC(ZSTD(1)),
    MODIFY COLUMN seq         UInt64 CODEC(Delta, ZSTD(1)),
    MODIFY COLUMN ingested_at DateTime('UTC') CODEC(Delta, ZSTD(1)),
    MODIFY COLUMN source_offset Int64 CODEC(Delta, ZSTD(1));

ALTER TABLE {db}.dlq_events
    MODIFY COLUMN raw String CODEC(ZSTD(3));
