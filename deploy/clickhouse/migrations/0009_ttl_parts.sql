-- min_version: 23.8
-- Retention on TTL-capable servers: `Retention` sets the table TTL from the
-- operator's --keep (deleting audit evidence is never a migration's default).
-- This makes a TTL drop whole parts only, like partition drops on 18.16,
-- instead of rewriting parts row by row.
ALTER TABLE {db}.events       MODIFY SETTING ttl_only_drop_parts = 1;
ALTER TABLE {db}.dlq_events   MODIFY SETTING ttl_only_drop_parts = 1;
ALTER TABLE {db}.chain_breaks MODIFY SETTING ttl_only_drop_parts = 1;
