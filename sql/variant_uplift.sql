-- Conversion and uplift per A/B variant (campaigns/README.md, "Variants"): for each
-- campaign and variant, how many of its triggers were followed by a conversion event
-- of the same user within `conversion_window` (default: a purchase within 24 hours),
-- beside the campaign's holdout group. Holdout users get no variant and are sent
-- nothing, so each variant is measured against the same control:
-- uplift = the variant's rate - the holdout rate. A campaign without variants gives
-- one row with variant NULL (the same numbers as conversion_funnel.sql).
--
-- Rows are per campaign, variant and `funnel_window` (default 1 day) of trigger time,
-- final once the watermark passes the window's end plus the conversion window.
--
--   rtm sql run sql/variant_uplift.sql --bounded
--   rtm sql run sql/variant_uplift.sql --set conversion_window='7 days'

{% include 'tables.sql.j2' %}

{% include 'trigger_outcomes.sql.j2' %}

-- A trigger followed by two purchases converted once: count ids.
CREATE TEMPORARY VIEW variant_counts AS
SELECT
  window_start,
  window_end,
  campaign_id,
  `variant`,
  COUNT(DISTINCT trigger_id) AS treated,
  COUNT(DISTINCT trigger_id) FILTER (WHERE conversion_id IS NOT NULL) AS treated_converted
FROM TABLE(TUMBLE(TABLE trigger_outcomes, DESCRIPTOR(trigger_time), {{ funnel_window | interval }}))
WHERE NOT holdout
GROUP BY window_start, window_end, campaign_id, `variant`;

CREATE TEMPORARY VIEW holdout_counts AS
SELECT
  window_start,
  window_end,
  campaign_id,
  COUNT(DISTINCT trigger_id) AS holdout,
  COUNT(DISTINCT trigger_id) FILTER (WHERE conversion_id IS NOT NULL) AS holdout_converted
FROM TABLE(TUMBLE(TABLE trigger_outcomes, DESCRIPTOR(trigger_time), {{ funnel_window | interval }}))
WHERE holdout
GROUP BY window_start, window_end, campaign_id;

-- A window join (same window, same campaign): each row once, final. Rates are NULL for a
-- group without triggers (no holdout configured, say).
SELECT
  v.window_start,
  v.window_end,
  v.campaign_id,
  v.`variant`,
  v.treated,
  v.treated_converted,
  CAST(v.treated_converted AS DOUBLE) / NULLIF(v.treated, 0) AS treated_rate,
  COALESCE(h.holdout, 0) AS holdout,
  COALESCE(h.holdout_converted, 0) AS holdout_converted,
  CAST(h.holdout_converted AS DOUBLE) / NULLIF(h.holdout, 0) AS holdout_rate,
  CAST(v.treated_converted AS DOUBLE) / NULLIF(v.treated, 0)
    - CAST(h.holdout_converted AS DOUBLE) / NULLIF(h.holdout, 0) AS uplift
FROM variant_counts AS v
LEFT JOIN holdout_counts AS h
  ON v.window_start = h.window_start
  AND v.window_end = h.window_end
  AND v.campaign_id = h.campaign_id;
