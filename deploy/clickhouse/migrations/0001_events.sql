-- One row per audit event. The envelope is typed columns, the payload
-- fields compliance filters on are flattened into typed columns (empty or
-- zero when the event type has no such field), and `raw` keeps the
-- canonical event bytes, which are what the hash chain covers.
--
-- Sorting key: (tenant, event_type, day, session_id, event_time, event_id,
-- hash). Every part of it is fixed by the event's content, so a redelivered
-- event collapses into one row in ReplacingMergeTree while two different
-- events can never collapse. `hash` is in the key on purpose: a forged
-- event that reuses an id with other content stays visible next to the
-- original instead of silently replacing it. event_type and the day come
-- before session_id so per-type time ranges read a contiguous range; the
-- few event types and days are low-cardinality prefixes, so a per-session
-- timeline is still a handful of binary searches in the primary index.
CREATE TABLE IF NOT EXISTS {db}.events
(
    event_id          UInt64,
    event_type        String,
    schema_version    String,
    event_time        DateTime('UTC'),
    event_time_us     UInt32,
    tenant            String,
    session_id        String,
    runner_id         String,
    seq               UInt64,
    prev_hash         String,
    hash              String,
    actor_type        String,
    actor_id          String,
    agent_name        String,
    agent_version     String,
    tool_call_id      String,
    approval_id       String,
    parent_event_id   UInt64,
    trace_id          String,
    policy_id         String,
    policy_sha256     String,

    tool_name         String,
    command           String,
    cwd               String,
    path              String,
    url               String,
    arguments_sha256  String,
    decision          String,
    reason_code       String,
    rule_id           String,
    approval_mode     String,
    risk              String,
    kind              String,
    reason            String,
    summary           String,
    requester         String,
    approval_outcome  String,
    approval_scope    String,
    approver          String,
    expires_at        DateTime('UTC'),
    decided_at        DateTime('UTC'),
    key_id            String,
    egress_phase      String,
    host              String,
    port              UInt16,
    resolved_ip       String,
    method            String,
    sni               String,
    status_code       UInt16,
    bytes_sent        UInt64,
    bytes_received    UInt64,
    exit_code         Int32,
    duration_ms       UInt64,
    timed_out         UInt8,
    killed_reason     String,
    stdout_length     UInt64,
    stdout_sha256     String,
    stderr_length     UInt64,
    stderr_sha256     String,
    error             String,
    syscall           String,
    severity          String,
    rule_version      String,
    group_key         String,
    alert_count       UInt64,
    suppressed        UInt64,
    alert_action      String,
    first_seen        DateTime('UTC'),
    last_seen         DateTime('UTC'),
    matched_event_ids Array(UInt64),
    ref_event_id      UInt64,
    by_id             String,
    workspace         String,
    image             String,
    sandbox_profile   String,
    sandbox_profile_sha256 String,
    operator          String,
    mode              String,
    client_name       String,

    raw               String,
    source_topic      String,
    source_partition  Int32,
    source_offset     Int64,
    ingested_at       DateTime('UTC')
)
ENGINE = ReplacingMergeTree()
PARTITION BY toYYYYMM(event_time)
ORDER BY (tenant, event_type, toDate(event_time), session_id, event_time, event_id, hash)
SETTINGS index_granularity = 8192;
