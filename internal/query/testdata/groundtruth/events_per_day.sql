-- title: Events per day
-- purpose: How many events were recorded on each day of the period (UTC).
-- param: from DateTime  start of the period (inclusive)
-- param: to DateTime  end of the period (exclusive)
-- findings: no
-- chart: self day event_count
SELECT toDate(event_time) AS day, count() AS event_count
FROM events FINAL
WHERE event_time >= @from AND event_time < @to
GROUP BY day
ORDER BY day
