-- The tool call an event belongs to, as one number: call_key is
-- cityHash64(tenant, session_id, tool_call_id), the key the per-call
-- reports (unapproved_actions, dangling_calls) have always folded and
-- probed by. Computed at insert, it is read as 8 bytes a row instead of
-- three strings hashed again by every scan: those reports scan a month's
-- call events four times, and hashing the strings was about a fifth of
-- their server CPU at 10M events (measured on the bench database).
--
-- DEFAULT, not MATERIALIZED: an insert into a Distributed table on 18.16
-- sends the local table the columns it computed, and a local table
-- refuses a MATERIALIZED one ("Cannot insert column call_key, because it
-- is MATERIALIZED column", measured). Writers never name it (the store's
-- insert lists the event columns only), so the server computes it.
-- Parts written before this migration compute it on read, from the same
-- columns, until a merge rewrites them (OPTIMIZE ... FINAL of a partition
-- rewrites it at once): the values are the same either way. (18.16 has no
-- ADD COLUMN IF NOT EXISTS: a rerun counts "already exists" as done.)
ALTER TABLE {db}.events
    ADD COLUMN call_key UInt64 DEFAULT cityHash64(tenant, session_id, tool_call_id);
