-- Conversion and uplift per campaign and variant from the campaigns' own goals
-- (`goal:` in the campaign, conversions on rtm.conversions): the share of triggers whose
-- goal was reached, beside the campaign's holdout group (whose triggers wait for the
-- goal too, unsent): uplift = the variant's rate - the holdout rate. Unlike
-- variant_uplift.sql, which counts any `conversion_event` after a trigger, this
-- counts what each campaign says converts, within its own window.
--
-- Rows are per campaign, variant and `funnel_window` (default 1 day) of trigger time,
-- final once the watermark passes the window's end plus `goal_window` (default 7 days,
-- at least the longest goal.within).
--
--   rtm sql run sql/goal_uplift.sql --bounded

{% include 'tables.sql.j2' %}

{% include 'goal_outcomes.sql.j2' %}

{% include 'uplift_by_variant.sql.j2' %}
