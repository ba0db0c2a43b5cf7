-- min_version: 23.8
-- The exact event time as one DateTime64(6) column, computed by the server
-- from the portable pair (event_time, event_time_us), so writers insert the
-- same columns on every server generation.
ALTER TABLE {db}.events
    ADD COLUMN IF NOT EXISTS event_ts DateTime64(6, 'UTC')
        MATERIALIZED addMicroseconds(toDateTime64(event_time, 6, 'UTC'), event_time_us)
        AFTER event_time_us;
