-- The conversion funnel per campaign: how many triggers were followed by a purchase
-- of the same user within `conversion_window` (default 24 hours), for the treated
-- group and for the holdout group side by side. Holdout users matched the campaign
-- but were sent nothing, so their rate is what the campaign's users would have done
-- anyway: uplift = treated rate - holdout rate. `suppressed` counts the campaign's
-- triggers the policy's channel caps held back (rtm.suppressed, holdout ones included):
-- matched, but never sent, so in neither group.
--
-- Rows are per campaign and per `funnel_window` (default 1 day) of trigger time. A
-- window's row comes out once the watermark passes its end plus the conversion
-- window, when no later purchase can change it. A bounded run ends at the end of
-- its input: triggers younger than the conversion window count as not converted.
--
--   rtm sql run sql/conversion_funnel.sql --bounded
--   rtm sql run sql/conversion_funnel.sql --set conversion_window=7d --set conversion_event=checkout

{% include 'tables.sql.j2' %}

{% include 'trigger_outcomes.sql.j2' %}

-- The triggers with their outcomes, and the suppressed ones beside them.
CREATE TEMPORARY VIEW funnel_rows AS
SELECT trigger_id, campaign_id, holdout, conversion_id, FALSE AS was_suppressed, trigger_time
FROM trigger_outcomes
UNION ALL
SELECT trigger_id, campaign_id, holdout, CAST(NULL AS STRING), TRUE, trigger_time
FROM suppressed;

-- Counts per group. A trigger followed by two purchases converted once: count ids.
CREATE TEMPORARY VIEW funnel_counts AS
SELECT
  window_start,
  window_end,
  campaign_id,
  COUNT(DISTINCT trigger_id) FILTER (WHERE NOT was_suppressed AND NOT holdout) AS treated,
  COUNT(DISTINCT trigger_id) FILTER (WHERE NOT was_suppressed AND NOT holdout AND conversion_id IS NOT NULL)
    AS treated_converted,
  COUNT(DISTINCT trigger_id) FILTER (WHERE NOT was_suppressed AND holdout) AS holdout,
  COUNT(DISTINCT trigger_id) FILTER (WHERE NOT was_suppressed AND holdout AND conversion_id IS NOT NULL)
    AS holdout_converted,
  COUNT(DISTINCT trigger_id) FILTER (WHERE was_suppressed) AS suppressed
FROM TABLE(TUMBLE(TABLE funnel_rows, DESCRIPTOR(trigger_time), {{ funnel_window | interval }}))
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
    - CAST(holdout_converted AS DOUBLE) / NULLIF(holdout, 0) AS uplift,
  suppressed
FROM funnel_counts;
