-- title: Policy versions in force over the period
-- purpose: Every policy document (id and sha256) that decisions in the
--   period were made under, when it was first and last used, by how many
--   decisions, sessions and emitters. More than one sha256 per id means
--   the policy changed during the period.
-- param: from DateTime  start of the period (inclusive)
-- param: to DateTime  end of the period (exclusive)
-- findings: no
SELECT
    policy_id, policy_sha256,
    min(event_time)                                   AS first_used,
    max(event_time)                                   AS last_used,
    count()                                           AS decisions,
    countIf(decision = 'deny')                        AS denials,
    uniqExact(session_id)                             AS sessions,
    uniqExact(runner_id)                              AS emitters
FROM events FINAL
WHERE policy_id != '' AND event_time >= @from AND event_time < @to
GROUP BY policy_id, policy_sha256
ORDER BY first_used, policy_id, policy_sha256
