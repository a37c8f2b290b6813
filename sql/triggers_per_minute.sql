-- Triggers per campaign and channel per minute (`trigger_window`, default 1 minute).
--
-- What the delivery connectors are asked to send, and what the holdout group held
-- back, per campaign and channel. Windows follow the triggers' event time, so a
-- replay gives the same rows as the live run did.
--
--   rtm sql run sql/triggers_per_minute.sql --bounded
--   rtm sql run sql/triggers_per_minute.sql --set trigger_window=5m

{% include 'tables.sql.j2' %}

SELECT
  window_start,
  window_end,
  campaign_id,
  channel,
  -- Trigger ids are deterministic: a trigger written twice (an at-least-once retry,
  -- a replay) has one id, so counting distinct ids counts it once.
  COUNT(DISTINCT trigger_id) AS triggers,
  COUNT(DISTINCT trigger_id) FILTER (WHERE NOT holdout) AS delivered,
  -- The control group: recorded so uplift can be measured, never delivered.
  COUNT(DISTINCT trigger_id) FILTER (WHERE holdout) AS held_out,
  COUNT(DISTINCT user_key) AS users
FROM TABLE(TUMBLE(TABLE triggers, DESCRIPTOR(trigger_time), {{ trigger_window | interval }}))
GROUP BY window_start, window_end, campaign_id, channel;
