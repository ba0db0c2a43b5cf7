-- The activity report pre-aggregated: one row per (tenant, day, session)
-- holding aggregate states, filled at insert by a materialized view, so
-- a month of activity reads about one row per session instead of every
-- event (and never the 64-byte hash column).
--
-- Every state is idempotent: a row stored twice (a redelivery not yet
-- merged away in events, a batch retried, the backfill below overlapping
-- live inserts) leaves it unchanged. The counts are uniqExact of
-- cityHash64(event_id, hash), the pair that with the event's own content
-- makes up events' sorting key, so they count what `events FINAL` counts.
-- A day is the event's UTC day; the report reads whole days here and the
-- partial days at the ends of its period from events. See README.md.
--
-- agent_name is cast to String: on servers where it is LowCardinality
-- the state's type would otherwise differ from the column's.
CREATE TABLE IF NOT EXISTS {db}.activity_sessions
(
    tenant            String,
    day               Date,
    session_id        String,
    agent             AggregateFunction(anyIf, String, UInt8),
    first_event       AggregateFunction(min, DateTime('UTC')),
    last_event        AggregateFunction(max, DateTime('UTC')),
    events            AggregateFunction(uniqExact, UInt64),
    tool_calls        AggregateFunction(uniqExactIf, UInt64, UInt8),
    allowed           AggregateFunction(uniqExactIf, UInt64, UInt8),
    asked             AggregateFunction(uniqExactIf, UInt64, UInt8),
    denied            AggregateFunction(uniqExactIf, UInt64, UInt8),
    approval_requests AggregateFunction(uniqExactIf, UInt64, UInt8),
    egress_decisions  AggregateFunction(uniqExactIf, UInt64, UInt8),
    alerts            AggregateFunction(uniqExactIf, UInt64, UInt8)
)
ENGINE = AggregatingMergeTree()
PARTITION BY toYYYYMM(day)
ORDER BY (tenant, day, session_id);

CREATE MATERIALIZED VIEW IF NOT EXISTS {db}.activity_sessions_mv TO {db}.activity_sessions AS
SELECT
    tenant,
    toDate(event_time)                                                                   AS day,
    session_id,
    anyIfState(CAST(agent_name AS String), agent_name != '')                             AS agent,
    minState(event_time)                                                                 AS first_event,
    maxState(event_time)                                                                 AS last_event,
    uniqExactState(cityHash64(event_id, hash))                                           AS events,
    uniqExactIfState(cityHash64(event_id, hash), event_type = 'tool_call.requested')     AS tool_calls,
    uniqExactIfState(cityHash64(event_id, hash), event_type = 'policy.decision' AND decision = 'allow') AS allowed,
    uniqExactIfState(cityHash64(event_id, hash), event_type = 'policy.decision' AND decision = 'ask')   AS asked,
    uniqExactIfState(cityHash64(event_id, hash), event_type = 'policy.decision' AND decision = 'deny')  AS denied,
    uniqExactIfState(cityHash64(event_id, hash), event_type = 'approval.requested')      AS approval_requests,
    uniqExactIfState(cityHash64(event_id, hash), event_type = 'net.egress' AND egress_phase = 'decision') AS egress_decisions,
    uniqExactIfState(cityHash64(event_id, hash), event_type = 'alert.raised')            AS alerts
FROM {db}.events
GROUP BY tenant, day, session_id;

-- Backfill the events stored before the view existed. Events inserted
-- while this runs reach the table twice, which the idempotent states
-- absorb.
INSERT INTO {db}.activity_sessions
SELECT
    tenant,
    toDate(event_time)                                                                   AS day,
    session_id,
    anyIfState(CAST(agent_name AS String), agent_name != '')                             AS agent,
    minState(event_time)                                                                 AS first_event,
    maxState(event_time)                                                                 AS last_event,
    uniqExactState(cityHash64(event_id, hash))                                           AS events,
    uniqExactIfState(cityHash64(event_id, hash), event_type = 'tool_call.requested')     AS tool_calls,
    uniqExactIfState(cityHash64(event_id, hash), event_type = 'policy.decision' AND decision = 'allow') AS allowed,
    uniqExactIfState(cityHash64(event_id, hash), event_type = 'policy.decision' AND decision = 'ask')   AS asked,
    uniqExactIfState(cityHash64(event_id, hash), event_type = 'policy.decision' AND decision = 'deny')  AS denied,
    uniqExactIfState(cityHash64(event_id, hash), event_type = 'approval.requested')      AS approval_requests,
    uniqExactIfState(cityHash64(event_id, hash), event_type = 'net.egress' AND egress_phase = 'decision') AS egress_decisions,
    uniqExactIfState(cityHash64(event_id, hash), event_type = 'alert.raised')            AS alerts
FROM {db}.events
GROUP BY tenant, day, session_id;
