-- Session statistics per platform, per `session_window` (default 1 hour) of the
-- time sessions ended: how many, by how many users, how long, how deep.
--
-- Reads the session_end records of rtm.sessions (see tables.sql.j2 for the fields).
-- A session counts in the window in which its last event happened.
--
--   rtm sql run sql/session_stats.sql --bounded --set session_window=1d

{% include 'tables.sql.j2' %}

CREATE TEMPORARY VIEW ended_sessions AS
SELECT * FROM sessions WHERE kind = 'session_end';

SELECT
  window_start,
  window_end,
  platform,
  COUNT(DISTINCT session_id) AS sessions,
  COUNT(DISTINCT user_key) AS users,
  -- AVG of integers is an integer in Flink SQL: average doubles instead.
  AVG(CAST(`end` - `start` AS DOUBLE)) / 1000 AS avg_duration_s,
  AVG(CAST(event_count AS DOUBLE)) AS avg_events,
  AVG(CAST(pages AS DOUBLE)) AS avg_pages,
  -- Bounces: sessions of a single event.
  COUNT(DISTINCT session_id) FILTER (WHERE event_count = 1) AS bounces
FROM TABLE(TUMBLE(TABLE ended_sessions, DESCRIPTOR(record_time), {{ session_window | interval }}))
GROUP BY window_start, window_end, platform;
