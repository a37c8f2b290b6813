"""The reference scenarios (docs/CONTRACTS.md, "Campaign") as one input, with the triggers it must give
and those the policy (campaigns/policy.yaml) must suppress.

Times are offsets from T0; the last event (another user, 5 h later) carries event time
past every deadline, so a bounded run or a preview settles them all.
"""

import json

T0 = 1_795_600_000_000
SEC, MIN, HOUR = 1000, 60_000, 3_600_000

PROFILES = [
    {"user_id": "vip-0", "segments": ["vip"],
     "attributes": {"first_name": "Ann", "recommendations": ["sku-1", "sku-2"]}},
    {"user_id": "vip-16", "segments": ["vip"], "attributes": {"recommendations": ["sku-9"]}},  # in the holdout
]


def _event(n, type, at, who, **fields):
    return {"event_id": f"s{n}", "type": type, "ts": T0 + at, **who, **fields}


def events() -> list[dict]:
    game = {"context": {"app": "game"}, "params": {"game": "space-race"}}
    steps = [
        ("page_view", 0, {"anonymous_id": "anon-1"}, {"params": {"page": "landing"}}),
        ("page_view", 1 * SEC, {"user_id": "shopper"}, {"params": {"section": "shoes"}}),
        ("checkout", 2 * SEC, {"user_id": "vip-0"}, {"params": {"cart_items": 3}}),
        ("checkout", 2 * SEC, {"user_id": "vip-16"}, {"params": {"cart_items": 1}}),
        ("add_to_cart", 3 * SEC, {"user_id": "carter"}, {"params": {"sku": "sku-7", "name": "red shoes"}}),
        ("login", 4 * SEC, {"user_id": "gamer"}, game),
        ("page_view", 5 * SEC, {"anonymous_id": "reader"}, {"params": {"page": "a"}}),
        ("main_screen", 5 * SEC, {"user_id": "gamer"}, game),
        ("page_view", 6 * SEC, {"anonymous_id": "reader"}, {"params": {"page": "b"}}),
        ("chat", 6 * SEC, {"user_id": "gamer"}, game),
        ("page_view", 7 * SEC, {"anonymous_id": "reader"}, {"params": {"page": "c"}}),
        ("main_screen", 7 * SEC, {"user_id": "gamer"}, game),
        ("play", 8 * SEC, {"user_id": "gamer"}, game),
        ("page_view", 9 * SEC, {"anonymous_id": "bargain"}, {"params": {"section": "sale"}}),
        ("page_view", 10 * SEC, {"anonymous_id": "bargain"}, {"params": {"section": "sale"}}),  # same session
        # A known user opens the sale: sale_popup and store_section_popup complete on one page
        # view, one pop-up a session: sale_popup's priority wins; then the shoes, same session:
        # capped; the shoes again 40 min later, a new session: the section pop-up shows.
        ("page_view", 11 * SEC, {"user_id": "sale-fan"}, {"params": {"section": "sale"}}),
        ("page_view", 12 * SEC, {"user_id": "sale-fan"}, {"params": {"section": "shoes"}}),
        ("page_view", 20 * MIN, {"user_id": "carter"}, {"params": {"page": "home"}}),  # postpones cart_idle_push only
        ("page_view", 12 * SEC + 40 * MIN, {"user_id": "sale-fan"}, {"params": {"section": "shoes"}}),
        ("page_view", 5 * HOUR, {"anonymous_id": "late-visitor"}, {"params": {"page": "home"}}),
    ]
    return [_event(n, type, at, who, **fields) for n, (type, at, who, fields) in enumerate(steps)]


# (user key, campaign id, event time offset, message): exactly what must fire.
URGENCY = "Items in your order are selling fast: finish your checkout now."
EXPECTED = [
    ("anon-1", "welcome_coupon", 0, "Welcome! Here is $5 off your first order."),
    ("shopper", "store_section_popup", 1 * SEC, "New arrivals in Shoes for you!"),
    ("vip-0", "vip_checkout_recommendations", 2 * SEC, "Ann, these would go well with your order."),
    ("vip-16", "vip_checkout_recommendations", 2 * SEC, "Hi, these would go well with your order."),
    ("vip-0", "checkout_reminder_ab", 2 * SEC + 30 * MIN, URGENCY),  # both in variant "urgency"
    ("vip-16", "checkout_reminder_ab", 2 * SEC + 30 * MIN, URGENCY),
    ("reader", "three_page_views", 7 * SEC, "engaged session"),
    ("gamer", "login_to_play", 8 * SEC, "Good luck in your match!"),
    ("gamer", "game_come_back_email", 8 * SEC + HOUR, "Your game space-race misses you. Come back for a free life!"),
    ("bargain", "sale_popup", 9 * SEC, "Today's deals: up to 50% off in the sale."),
    ("sale-fan", "sale_popup", 11 * SEC, "Today's deals: up to 50% off in the sale."),
    ("sale-fan", "store_section_popup", 12 * SEC + 40 * MIN, "New arrivals in Shoes for you!"),
    ("carter", "cart_abandoned_email", 3 * SEC + 4 * HOUR, "You left red shoes in your cart."),
    ("carter", "cart_idle_push", 20 * MIN + 4 * HOUR, "Still thinking about red shoes?"),  # the page view postponed it
]
HOLDOUT_USERS = {"vip-16"}
# (user key, campaign id, event time offset, reason): exactly what the policy must suppress.
SUPPRESSED = [
    ("sale-fan", "store_section_popup", 11 * SEC, "cap popup 1 per session"),
    ("sale-fan", "store_section_popup", 12 * SEC, "cap popup 1 per session"),
]


def summary(triggers) -> list[tuple]:
    """Triggers as comparable (user key, campaign, event time offset, message) rows."""
    return sorted((t["user_key"], t["campaign_id"], t["event_time"] - T0, t["message"]) for t in triggers)


def suppressed_summary(suppressed) -> list[tuple]:
    """Suppressed triggers as comparable (user key, campaign, event time offset, reason) rows."""
    return sorted((t["user_key"], t["campaign_id"], t["event_time"] - T0, t["suppressed_reason"]) for t in suppressed)


def jsonl(rows) -> bytes:
    return b"".join(json.dumps(row).encode() + b"\n" for row in rows)
