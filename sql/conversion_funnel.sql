-- The conversion funnel per campaign: how many triggers were followed by a purchase
-- of the same user within `conversion_window` (default 24 hours), for the treated
-- group and for the holdout group side by side. Holdout users matched the campaign
-- but were sent nothing, so their rate is what the campaign's users would have done
-- anyway: uplift = treated rate - holdout rate.
--
-- Rows are per campaign and per `funnel_window` (default 1 day) of trigger time. A
-- window's row comes out once the watermark passes its end plus the conversion
-- window, when no later purchase can change it. A bounded run ends at the end of
-- its input: triggers younger than the conversion window count as not converted.
--
--   rtm sql run sql/conversion_funnel.sql --bounded
--   rtm sql run sql/conversion_funnel.sql --set conversion_window=7d --set conversion_event=checkout

{% include 'tables.sql.j2' %}

-- Every trigger, with each conversion event of its user that followed it within the
-- window. A trigger without one keeps a NULL conversion_id (LEFT interval join).
-- The interval join keeps trigger_time an event-time attribute, so it can be windowed.
CREATE TEMPORARY VIEW trigger_outcomes AS
SELECT
  t.trigger_id,
  t.campaign_id,
  t.holdout,
  t.trigger_time,
  e.event_id AS conversion_id
FROM triggers AS t
LEFT JOIN events AS e
  ON e.user_key = t.user_key
  AND e.event_type = {{ conversion_event | literal }}
  -- Strictly after: the event that completed the pattern does not convert itself.
  AND e.event_time > t.trigger_time
  AND e.event_time <= t.trigger_time + {{ conversion_window | interval }};

-- Counts per group. A trigger followed by two purchases converted once: count ids.
CREATE TEMPORARY VIEW funnel_counts AS
SELECT
  window_start,
  window_end,
  campaign_id,
  COUNT(DISTINCT trigger_id) FILTER (WHERE NOT holdout) AS treated,
  COUNT(DISTINCT trigger_id) FILTER (WHERE NOT holdout AND conversion_id IS NOT NULL) AS treated_converted,
  COUNT(DISTINCT trigger_id) FILTER (WHERE holdout) AS holdout,
  COUNT(DISTINCT trigger_id) FILTER (WHERE holdout AND conversion_id IS NOT NULL) AS holdout_converted
FROM TABLE(TUMBLE(TABLE trigger_outcomes, DESCRIPTOR(trigger_time), {{ funnel_window | interval }}))
GROUP BY window_start, window_end, campaign_id;

-- Rates are NULL for a group without triggers (no holdout configured, say).
SELECT
  window_start,
  window_end,
  campaign_id,
  treated,
  treated_converted,
  CAST(treated_converted AS DOUBLE) / NULLIF(treated, 0) AS treated_rate,
  holdout,
  holdout_converted,
  CAST(holdout_converted AS DOUBLE) / NULLIF(holdout, 0) AS holdout_rate,
  CAST(treated_converted AS DOUBLE) / NULLIF(treated, 0)
    - CAST(holdout_converted AS DOUBLE) / NULLIF(holdout, 0) AS uplift
FROM funnel_counts;
