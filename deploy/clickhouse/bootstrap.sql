-- Created by the migration runner before it takes the lock, so it is not a
-- numbered migration. Every statement is idempotent.

-- One row per applied migration. ReplacingMergeTree keyed by version, so a
-- record written twice (a crash between the DDL and the record, then a
-- retry) reads back once with FINAL.
CREATE TABLE IF NOT EXISTS {db}.schema_migrations
(
    version        UInt32,
    name           String,
    checksum       String,
    min_version    String,
    server_version String,
    applied_by     String,
    applied_at     DateTime('UTC')
)
ENGINE = ReplacingMergeTree(applied_at)
ORDER BY version;

-- The migration lock, an append-only log: ClickHouse has no advisory locks
-- and no compare-and-set, but a Log table serialises inserts and reads back
-- in insertion order, so every reader replays the same sequence of acquire
-- and release rows and agrees on one holder. Leases are milliseconds since
-- the Unix epoch.
CREATE TABLE IF NOT EXISTS {db}.schema_lock
(
    owner       String,
    op          String,
    at_ms       UInt64,
    lease_until UInt64
)
ENGINE = Log;
