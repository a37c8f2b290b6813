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

{% include 'uplift_by_variant.sql.j2' %}
