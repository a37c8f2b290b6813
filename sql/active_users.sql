-- Active users per `active_users_window` (default 1h, 1d gives daily
-- active users): distinct user keys with at least one valid event in the window.
--
-- A visitor who logs in mid-window shows up under both keys (anonymous_id before,
-- user_id after), as the campaign job sees them too.
--
--   rtm sql run sql/active_users.sql --bounded --set active_users_window=1d

{% include 'tables.sql.j2' %}

SELECT
  window_start,
  window_end,
  COUNT(DISTINCT user_key) AS active_users,
  -- COUNT DISTINCT skips NULLs: only users known by user_id.
  COUNT(DISTINCT user_id) AS known_users,
  COUNT(DISTINCT event_id) AS events
FROM TABLE(TUMBLE(TABLE events, DESCRIPTOR(event_time), {{ active_users_window | interval }}))
GROUP BY window_start, window_end;
