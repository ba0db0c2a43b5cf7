-- title: Sessions with chain gaps or breaks
-- purpose: Every chain (session, emitter) with a problem: the breaks the
--   ingester recorded in chain_breaks (source ingest), and a check of the
--   stored rows (source seq_check) of every chain with events in the
--   period: a chain must hold seq 1..n once each, so a deleted row shows
--   as a gap and a second row with a seen seq as duplicate_seq. Chains are
--   read from lookback_hours before the period, so a chain that began
--   earlier than that shows as "missing before seq N": raise the
--   parameter. `query verify` recomputes the hashes and names the events.
--   Must be empty.
-- param: from DateTime  start of the period (inclusive)
-- param: to DateTime  end of the period (exclusive)
-- param: lookback_hours UInt32 = 24  how long before @from a chain with events in the period may have started
-- findings: yes
-- The seq check runs in two phases without FINAL, each one scan of the
-- period and its lookback. Phase one keeps, per (session, emitter),
-- only counts: rows of one tenant that hold seq 1..n once each (count =
-- distinct seqs = max seq, min seq 1) are an intact chain, and a
-- redelivered row only makes its chain a candidate. The latest time in
-- the same fold tells whether the pair has events in the period, so no
-- second scan looks for the period's chains; a pair stored under two
-- tenants (never in practice) is always a candidate, so the counts of one
-- tenant's chain cannot hide behind another's. Phase two folds the few
-- candidates in full, counting rows as distinct (event_id, hash) as FINAL
-- would.
SELECT tenant, session_id, runner_id, kind, event_id, expected_seq, got_seq, detail, 'ingest' AS source
FROM chain_breaks FINAL
WHERE event_time >= @from AND toDate(event_time) >= toDate(@from) - 1 AND event_time < @to AND toDate(event_time) <= toDate(@to) + 1
UNION ALL
SELECT
    tenant, session_id, runner_id,
    if(distinct_seqs != row_count, 'duplicate_seq', 'gap') AS kind,
    toUInt64(0)                                             AS event_id,
    row_count                                               AS expected_seq,
    last_seq                                                AS got_seq,
    concat(toString(row_count), ' rows, ', toString(distinct_seqs), ' distinct seq, max seq ', toString(last_seq),
           if(first_seq > 1, concat(', missing before seq ', toString(first_seq)), ''),
           if(length(gaps) > 0,
              concat(', missing after seq ', arrayStringConcat(arrayMap(x -> toString(x), arraySlice(gaps, 1, 10)), ',')),
              ''))                                          AS detail,
    'seq_check'                                             AS source
FROM
(
    SELECT
        tenant, session_id, runner_id,
        uniqExact(event_id, hash) AS row_count,
        uniqExact(seq)    AS distinct_seqs,
        max(seq)          AS last_seq,
        min(seq)          AS first_seq,
        -- The seqs after which some are missing: neighbours more than one
        -- apart in the sorted distinct seqs (no lambda captures a column:
        -- 18.16 drops captured columns from subqueries).
        arraySort(groupUniqArray(seq)) AS sorted,
        arrayFilter((a, b) -> b - a > 1, arrayPopBack(sorted), arrayPopFront(sorted)) AS gaps
    FROM events
    WHERE event_time >= subtractHours(@from, @lookback_hours) AND toDate(event_time) >= toDate(subtractHours(@from, @lookback_hours)) - 1 AND event_time < @to AND toDate(event_time) <= toDate(@to) + 1
      AND cityHash64(session_id, runner_id) IN
      (
          SELECT pair
          FROM
          (
              SELECT
                  cityHash64(session_id, runner_id) AS pair,
                  count()                  AS k_rows,
                  uniqExact(seq)           AS k_seqs,
                  min(seq)                 AS k_first,
                  max(seq)                 AS k_last,
                  max(event_time)          AS k_latest,
                  min(cityHash64(tenant))  AS k_tenant_lo,
                  max(cityHash64(tenant))  AS k_tenant_hi
              FROM events
              WHERE event_time >= subtractHours(@from, @lookback_hours) AND toDate(event_time) >= toDate(subtractHours(@from, @lookback_hours)) - 1 AND event_time < @to AND toDate(event_time) <= toDate(@to) + 1
              GROUP BY pair
              HAVING k_latest >= @from
                 AND (k_first != 1 OR k_rows != k_seqs OR k_seqs != k_last OR k_tenant_lo != k_tenant_hi)
          )
      )
    GROUP BY tenant, session_id, runner_id
    HAVING first_seq != 1 OR row_count != last_seq OR distinct_seqs != row_count
)
ORDER BY tenant, session_id, runner_id, kind, event_id
