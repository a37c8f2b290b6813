"""Each reference scenario (docs/CONTRACTS.md, "Campaign"): events that fire it, and near-misses that must not."""

import msgspec
import pytest

from rtm.campaigns import CampaignError, CampaignSet, load_definition, load_file
from rtm.engine import apply_event
from rtm.settings import CAMPAIGNS_DIR
from rtm.triggers import in_holdout
from rtm.variants import assign

from engine_helpers import HOUR, MIN, SEC, User, campaign_set, event

VIP = {"user_id": "u1", "segments": ["vip"],
       "attributes": {"first_name": "Ann", "recommendations": ["sku-1", "sku-2"]}}


def landing(event_id="e1", at=0, **kw):
    return event(event_id, "page_view", at, params={"page": "landing"}, **kw)


# -- first-time visitor: landing page -> $5 coupon ---------------------------------

def test_first_time_visitor_on_landing_gets_the_coupon(shipped):
    user = User(shipped)
    user.send(landing(user_id=None, anonymous_id="anon-1"))
    [trigger] = user.fired("welcome_coupon")
    assert trigger.channel == "popup" and trigger.data == {"coupon_code": "WELCOME5", "amount_usd": 5}
    assert trigger.matched_event_ids == ["e1"] and trigger.anonymous_id == "anon-1"


def test_returning_visitor_on_landing_gets_no_coupon(shipped):
    user = User(shipped)
    user.send(event("e0", "app_open", 0), landing(at=SEC))
    assert user.fired("welcome_coupon") == []


def test_coupon_is_given_once_even_after_a_new_session(shipped):
    user = User(shipped)
    user.send(landing(), landing("e2", at=2 * HOUR))
    assert len(user.fired("welcome_coupon")) == 1


# -- known user views a store section -> pop-up about that section ---------------------

def test_known_user_viewing_a_section_gets_a_popup_for_that_section(shipped):
    user = User(shipped, VIP)
    user.send(event("e1", "page_view", 0, params={"section": "shoes"}))
    [trigger] = user.fired("store_section_popup")
    assert trigger.data == {"section": "shoes"}
    assert trigger.message == "New arrivals in Shoes for you, Ann!"


def test_anonymous_user_viewing_a_section_gets_no_popup(shipped):
    user = User(shipped)
    user.send(event("e1", "page_view", 0, user_id=None, anonymous_id="a", params={"section": "shoes"}))
    assert user.fired("store_section_popup") == []


def test_section_popup_cap_of_one_per_hour_is_kept(shipped):
    user = User(shipped)
    for i, at in enumerate([0, 10 * MIN, 50 * MIN, 61 * MIN]):
        user.send(event(f"e{i}", "page_view", at, params={"section": f"s{i}"}))
    assert [t.data["section"] for t in user.fired("store_section_popup")] == ["s0", "s3"]


# -- VIP at checkout with fewer than 4 items -> recommendations -----------------------

def vip_user_not_in_holdout() -> str:
    return next(u for u in (f"vip-{i}" for i in range(100))
                if not in_holdout(u, "vip_checkout_recommendations", 0.1))


def test_vip_at_checkout_with_few_items_gets_the_profile_recommendations(shipped):
    uid = vip_user_not_in_holdout()
    user = User(shipped, {**VIP, "user_id": uid})
    user.send(event("e1", "checkout", 0, user_id=uid, params={"cart_items": 3}))
    [trigger] = user.fired("vip_checkout_recommendations")
    assert trigger.data == {"items": ["sku-1", "sku-2"]} and trigger.holdout is False


@pytest.mark.parametrize("profile, items", [
    ({**VIP, "segments": ["regular"]}, 2),  # wrong segment
    (None, 2),  # no profile at all
    (VIP, 4),  # too many items
    (VIP, None),  # the field is missing
])
def test_checkout_popup_near_misses(shipped, profile, items):
    user = User(shipped, profile)
    params = {} if items is None else {"cart_items": items}
    user.send(event("e1", "checkout", 0, params=params))
    assert user.fired("vip_checkout_recommendations") == []


def test_vip_in_the_holdout_group_is_recorded_but_marked_holdout(shipped):
    uid = next(u for u in (f"vip-{i}" for i in range(1000)) if in_holdout(u, "vip_checkout_recommendations", 0.1))
    user = User(shipped, {**VIP, "user_id": uid})
    user.send(event("e1", "checkout", 0, user_id=uid, params={"cart_items": 1}))
    [trigger] = user.fired("vip_checkout_recommendations")
    assert trigger.holdout is True


def test_holdout_share_is_close_to_the_configured_share():
    share = sum(in_holdout(f"user-{i}", "c", 0.1) for i in range(20_000)) / 20_000
    assert 0.09 < share < 0.11


# -- cart abandoned: 4 h after the last add_to_cart, no purchase ------------------------

def add(event_id, at, sku="s1"):
    return event(event_id, "add_to_cart", at, params={"sku": sku, "name": f"item {sku}"})


def test_cart_abandoned_email_fires_4h_after_the_add(shipped):
    user = User(shipped)
    user.send(add("c1", 0))
    assert user.next_deadline == event("x", "x", 30 * MIN).ts  # first the session gap...
    user.settle(30 * MIN)
    assert user.next_deadline == event("x", "x", 4 * HOUR).ts  # ...then the absence deadline
    user.settle(4 * HOUR)
    [trigger] = user.fired("cart_abandoned_email")
    assert trigger.data == {"template": "cart_abandoned", "sku": "s1"}
    assert trigger.event_time == event("x", "x", 4 * HOUR).ts
    assert trigger.matched_event_ids[0] == "c1" and trigger.matched_event_ids[1].startswith("absence:")


def test_cart_abandoned_other_activity_does_not_postpone_it(shipped):
    user = User(shipped)
    user.send(add("c1", 0), event("p1", "page_view", 3 * HOUR), event("p2", "page_view", 3 * HOUR + 50 * MIN))
    user.settle(4 * HOUR)
    assert [t.event_time for t in user.fired("cart_abandoned_email")] == [event("x", "x", 4 * HOUR).ts]


def test_cart_abandoned_a_later_add_to_cart_postpones_it_and_names_the_last_item(shipped):
    user = User(shipped)
    user.send(add("c1", 0, "s1"), add("c2", 2 * HOUR, "s2"))
    user.settle(4 * HOUR)
    assert user.fired("cart_abandoned_email") == []
    user.settle(6 * HOUR)
    [trigger] = user.fired("cart_abandoned_email")
    assert trigger.data["sku"] == "s2" and trigger.matched_event_ids[0] == "c2"


def test_cart_abandoned_is_cancelled_by_a_purchase(shipped):
    user = User(shipped)
    user.send(add("c1", 0), event("b1", "purchase", HOUR))
    user.settle(10 * HOUR)
    assert user.fired("cart_abandoned_email") == []


def test_purchase_before_the_add_does_not_cancel(shipped):
    user = User(shipped)
    user.send(event("b1", "purchase", 0), add("c1", HOUR))
    user.settle(5 * HOUR)
    assert len(user.fired("cart_abandoned_email")) == 1


def test_cart_abandoned_cap_one_per_day(shipped):
    user = User(shipped)
    user.send(add("c1", 0))
    user.send(add("c2", 5 * HOUR))  # the first email fired at 4 h; this one would at 9 h
    user.settle(10 * HOUR)
    assert len(user.fired("cart_abandoned_email")) == 1


# -- game: 1 h without a game event -> user_left_game -> come-back email ----------------

def game(event_id, at, type="level_up", game_name="chess"):
    return event(event_id, type, at, context={"app": "game"}, params={"game": game_name})


def test_an_hour_without_game_events_sends_the_come_back_email(shipped):
    user = User(shipped)
    user.send(game("g1", 0), game("g2", 20 * MIN), event("w1", "page_view", 40 * MIN))
    user.settle(80 * MIN - 1)
    assert user.fired("game_come_back_email") == []
    user.settle(80 * MIN)
    [trigger] = user.fired("game_come_back_email")
    assert trigger.data == {"template": "come_back", "game": "chess"}
    assert trigger.event_time == event("x", "x", 80 * MIN).ts
    [marker] = trigger.matched_event_ids
    assert marker.startswith("user_left_game:")


def test_come_back_email_fires_even_when_the_last_game_event_names_no_game(shipped):
    user = User(shipped)
    user.send(game("g1", 0), event("g2", "play", MIN, context={"app": "game"}))
    user.settle(2 * HOUR)
    [trigger] = user.fired("game_come_back_email")
    assert trigger.data["game"] is None and trigger.event_time == event("x", "x", HOUR + MIN).ts


def test_a_game_event_within_the_hour_keeps_the_user_in(shipped):
    user = User(shipped)
    user.send(game("g1", 0), game("g2", 50 * MIN))
    user.settle(100 * MIN)
    assert user.fired("game_come_back_email") == []


def test_anonymous_player_gets_no_come_back_email(shipped):
    user = User(shipped)
    user.send(event("g1", "level_up", 0, user_id=None, anonymous_id="a1", context={"app": "game"}))
    user.settle(2 * HOUR)
    assert user.fired("game_come_back_email") == []


# -- three page views in one session -----------------------------------------------

def pv(event_id, at):
    return event(event_id, "page_view", at)


def test_three_page_views_in_one_session_are_eligible(shipped):
    user = User(shipped)
    user.send(pv("p1", 0), event("x1", "add_to_cart", MIN), pv("p2", 2 * MIN), pv("p3", 3 * MIN))
    [trigger] = user.fired("three_page_views")
    assert trigger.matched_event_ids == ["p1", "p2", "p3"] and trigger.data["pages"] == 3


def test_three_page_views_across_two_sessions_are_not(shipped):
    user = User(shipped)
    user.send(pv("p1", 0), pv("p2", MIN), pv("p3", 40 * MIN))  # 39 min gap > 30 min: new session
    assert user.fired("three_page_views") == []
    user.send(pv("p4", 41 * MIN), pv("p5", 42 * MIN))
    assert [t.matched_event_ids for t in user.fired("three_page_views")] == [["p3", "p4", "p5"]]


# -- state machine: login -> main_screen <-> chat -> play ---------------------------

def test_state_machine_fires_on_entering_play_after_chat_round_trips(shipped):
    user = User(shipped)
    types = ["login", "main_screen", "chat", "main_screen", "chat", "main_screen", "play"]
    user.send(*(event(f"m{i}", t, i * SEC) for i, t in enumerate(types)))
    [trigger] = user.fired("login_to_play")
    assert trigger.matched_event_ids[-1] == "m6" and trigger.channel == "push"


@pytest.mark.parametrize("types", [
    ["main_screen", "login", "play"],  # out of order: play needs the main screen after login
    ["login", "chat", "main_screen"],  # chat is not reachable from logged_in, and no play
    ["login", "main_screen", "chat", "play"],  # play from chat is not a transition
])
def test_state_machine_near_misses(shipped, types):
    user = User(shipped)
    user.send(*(event(f"m{i}", t, i * SEC) for i, t in enumerate(types)))
    assert user.fired("login_to_play") == []


# -- options the shipped campaigns do not exercise ------------------------------------

WITHIN = """
id: browse_then_buy
version: 1
pattern:
  steps:
    - {event: page_view, as: view}
    - {event: add_to_cart, where: event.params.sku == view.params.sku}
  within: 10m
action: {channel: push, endpoint: p, message: "{{ view.params.sku }}"}
"""


def test_steps_out_of_order_do_not_match():
    user = User(campaign_set(WITHIN))
    user.send(event("a", "add_to_cart", 0, params={"sku": "x"}), event("v", "page_view", MIN, params={"sku": "x"}))
    assert user.triggers == []


def test_window_exceeded_does_not_match_but_a_fresh_start_does():
    user = User(campaign_set(WITHIN))
    user.send(event("v1", "page_view", 0, params={"sku": "x"}),
              event("a1", "add_to_cart", 11 * MIN, params={"sku": "x"}))
    assert user.triggers == []
    user.send(event("v2", "page_view", 12 * MIN, params={"sku": "x"}),
              event("a2", "add_to_cart", 13 * MIN, params={"sku": "x"}))
    assert [t.matched_event_ids for t in user.triggers] == [["v2", "a2"]]
    assert user.triggers[0].message == "x"


def test_a_binding_feeds_a_later_condition():
    user = User(campaign_set(WITHIN))
    user.send(event("v1", "page_view", 0, params={"sku": "x"}), event("a1", "add_to_cart", MIN, params={"sku": "y"}))
    assert user.triggers == []


EXCLUDE = """
id: no_ads_near_health
version: 1
audience:
  exclude: [{event: page_view, where: event.params.category == "health"}]
pattern:
  steps: [{event: page_view, times: 2}]
action: {channel: popup, endpoint: p}
"""


def test_real_time_exclusion_suppresses_for_the_rest_of_the_session_only():
    user = User(campaign_set(EXCLUDE))
    user.send(event("h", "page_view", 0, params={"category": "health"}), pv("p1", MIN), pv("p2", 2 * MIN))
    assert user.triggers == []
    user.send(pv("p3", HOUR), pv("p4", HOUR + MIN))  # a new session
    assert len(user.triggers) == 1


COOLDOWN = """
id: every_add
version: 1
pattern:
  steps: [{event: add_to_cart}]
action: {channel: push, endpoint: p}
limits: {cooldown: 10m, max: 3, per: 1d}
"""


def test_cooldown_and_cap_per_period():
    user = User(campaign_set(COOLDOWN))
    user.send(*(event(f"a{m}", "add_to_cart", m * MIN) for m in range(0, 60, 5)))
    assert [t.matched_event_ids for t in user.triggers] == [["a0"], ["a10"], ["a20"]]
    user.send(event("next-day", "add_to_cart", 25 * HOUR))
    assert len(user.triggers) == 4


# -- cart left open, user quiet for 4 h (absence of any event) -------------------------

def test_cart_idle_push_fires_4h_after_the_last_activity_naming_the_cart_kept_through_it(shipped):
    user = User(shipped)
    user.send(add("c1", 0, "s1"), pv("p1", HOUR), event("q1", "search", 3 * HOUR))
    user.settle(7 * HOUR - 1)
    assert user.fired("cart_idle_push") == []
    user.settle(7 * HOUR)
    [trigger] = user.fired("cart_idle_push")
    assert trigger.event_time == event("x", "x", 7 * HOUR).ts
    assert trigger.message == "Still thinking about item s1?" and trigger.data == {"sku": "s1"}
    assert trigger.matched_event_ids[0] == "c1"


def test_cart_idle_push_a_later_add_to_cart_restarts_the_match_and_names_the_new_item(shipped):
    user = User(shipped)
    user.send(add("c1", 0, "s1"), pv("p1", HOUR), add("c2", 2 * HOUR, "s2"))
    user.settle(7 * HOUR)
    [trigger] = user.fired("cart_idle_push")
    assert trigger.data == {"sku": "s2"} and trigger.matched_event_ids[0] == "c2"
    assert trigger.event_time == event("x", "x", 6 * HOUR).ts


def test_cart_idle_push_near_misses_activity_every_few_hours_or_a_purchase(shipped):
    active = User(shipped)
    active.send(add("c1", 0), *(pv(f"p{k}", k * (4 * HOUR - MIN)) for k in range(1, 5)))
    active.settle(20 * HOUR - 4 * MIN - 1)  # each page view came a minute before the 4 h were up
    assert active.fired("cart_idle_push") == []
    active.settle(20 * HOUR - 4 * MIN)  # 4 h after the last one
    assert len(active.fired("cart_idle_push")) == 1
    bought = User(shipped)
    bought.send(add("c1", 0), pv("p1", HOUR), event("b1", "purchase", 2 * HOUR))
    bought.settle(10 * HOUR)
    assert bought.fired("cart_idle_push") == []


ABSENCE_WITHIN = """
id: idle_after_view
version: 1
pattern:
  steps:
    - {event: page_view, where: event.params.page == "pricing", as: view}
  within: 3h
  absence: {for: 1h, event: "*"}
action: {channel: email, endpoint: e, message: "{{ view.params.plan }}"}
"""


def test_an_absence_event_of_the_start_type_that_fails_its_condition_postpones():
    user = User(campaign_set(ABSENCE_WITHIN))
    user.send(event("v1", "page_view", 0, params={"page": "pricing", "plan": "pro"}),
              event("v2", "page_view", 50 * MIN, params={"page": "home"}))
    user.settle(110 * MIN - 1)
    assert user.triggers == []
    user.settle(110 * MIN)
    [trigger] = user.triggers
    assert trigger.message == "pro" and trigger.event_time == event("x", "x", 110 * MIN).ts


def test_postponing_past_the_window_drops_the_match():
    user = User(campaign_set(ABSENCE_WITHIN))
    user.send(event("v1", "page_view", 0, params={"page": "pricing"}),
              *(event(f"h{i}", "page_view", i * 50 * MIN, params={"page": "home"}) for i in range(1, 5)))
    user.settle(10 * HOUR)  # the 4th page view (at 200 min) would put the deadline past 3 h
    assert user.triggers == []


# -- sale pop-up: at most once per session ---------------------------------------------

def sale(event_id, at, **kw):
    return event(event_id, "page_view", at, params={"section": "sale"}, **kw)


def test_sale_popup_shows_once_per_session_and_again_in_the_next_session(shipped):
    user = User(shipped)
    user.send(sale("s1", 0), sale("s2", 20 * MIN), sale("s3", 45 * MIN))  # 45 min: still the same session
    assert [t.matched_event_ids for t in user.fired("sale_popup")] == [["s1"]]
    user.send(sale("s4", 80 * MIN), sale("s5", 81 * MIN))  # 35 min after s3: a new session
    assert [t.matched_event_ids for t in user.fired("sale_popup")] == [["s1"], ["s4"]]


# -- the policy: one pop-up per session over all campaigns, priority decides ---------------

def shoes(event_id, at, **kw):
    return event(event_id, "page_view", at, params={"section": "shoes"}, **kw)


def test_a_known_user_opening_the_sale_gets_the_sale_popup_and_the_section_popup_is_suppressed(shipped):
    user = User(shipped)
    user.send(sale("s1", 0))  # both complete: sale_popup has priority 10
    assert [t.campaign_id for t in user.triggers] == ["sale_popup"]
    [held_back] = user.suppressed
    assert (held_back.campaign_id, held_back.suppressed_reason) == ("store_section_popup", "cap popup 1 per session")
    user.send(shoes("s2", MIN))  # the same session: the one pop-up is spent
    assert [t.matched_event_ids for t in user.suppressed] == [["s1"], ["s2"]]
    user.send(shoes("s3", 40 * MIN))  # a new session, and the section pop-up's own hour cap never counted s1, s2
    assert [(t.campaign_id, t.matched_event_ids) for t in user.triggers] == [("sale_popup", ["s1"]),
                                                                           ("store_section_popup", ["s3"])]


def test_an_anonymous_user_opening_the_sale_meets_no_contest(shipped):
    user = User(shipped)
    user.send(sale("s1", 0, user_id=None, anonymous_id="a1"))
    assert [t.campaign_id for t in user.triggers] == ["sale_popup"] and user.suppressed == []


def test_priority_decides_only_between_triggers_leaving_at_once_the_first_pop_up_of_a_session_stays(shipped):
    user = User(shipped)
    user.send(shoes("s1", 0), sale("s2", MIN))
    assert [t.campaign_id for t in user.triggers] == ["store_section_popup"]
    assert [t.campaign_id for t in user.suppressed] == ["sale_popup"]


PER_SESSION_DEADLINE = """
id: idle_twice
version: 1
pattern:
  steps: [{event: add_to_cart}]
  absence: {for: 10m, event: add_to_cart}
action: {channel: push, endpoint: p}
limits: {max: 2, per: session}
"""


def test_a_session_cap_counts_completions_at_deadlines_in_the_open_session():
    user = User(campaign_set(PER_SESSION_DEADLINE))
    user.send(*(event(f"a{m}", "add_to_cart", m * MIN) for m in (0, 12, 24)))  # one session (gaps < 30 min)
    user.settle(HOUR)
    assert [t.matched_event_ids[0] for t in user.triggers] == ["a0", "a12"]  # a24's, at 34 min, is the third
    user.send(event("a120", "add_to_cart", 2 * HOUR))  # a new session
    user.settle(3 * HOUR)
    assert [t.matched_event_ids[0] for t in user.triggers] == ["a0", "a12", "a120"]


# -- checkout left unfinished: an A/B test of two messages, holdout first ----------------

def reminder_user(want):
    """A user key whose assignment is `want` ("holdout", "plain" or "urgency")."""
    reminder = shipped_campaign("checkout_reminder_ab")
    for key in (f"buyer-{i}" for i in range(1000)):
        holdout = in_holdout(key, reminder.id, reminder.limits.holdout)
        name = "holdout" if holdout else assign(reminder.action.variants, key, reminder.id, reminder.version).name
        if name == want:
            return key


def shipped_campaign(campaign_id):
    return load_file(CAMPAIGNS_DIR / f"{campaign_id}.yaml")


@pytest.mark.parametrize("group, message, data", [
    ("plain", "Your order is waiting for you.", {"items": 2}),
    ("urgency", "Items in your order are selling fast: finish your checkout now.", {"items": 2, "urgent": True}),
    ("holdout", "Your order is waiting for you.", {"items": 2}),
])
def test_checkout_reminder_sends_the_users_variant_and_names_it(shipped, group, message, data):
    key = reminder_user(group)
    user = User(shipped)
    user.send(event("k1", "checkout", 0, user_id=key, params={"cart_items": 2}))
    user.settle(30 * MIN)
    [trigger] = user.fired("checkout_reminder_ab")
    assert (trigger.message, trigger.data) == (message, data)
    assert trigger.variant == (None if group == "holdout" else group)
    assert trigger.holdout is (group == "holdout")


def test_checkout_reminder_near_miss_a_purchase_within_30_minutes(shipped):
    user = User(shipped)
    user.send(event("k1", "checkout", 0, user_id=reminder_user("urgency")),
              event("b1", "purchase", 29 * MIN, user_id=reminder_user("urgency")))
    user.settle(2 * HOUR)
    assert user.fired("checkout_reminder_ab") == []


def test_a_new_version_draws_the_variants_again():
    reminder = shipped_campaign("checkout_reminder_ab")
    keys = [f"buyer-{i}" for i in range(200)]

    def names(version):
        return [assign(reminder.action.variants, k, reminder.id, version).name for k in keys]

    assert names(1) == names(1) and names(1) != names(2)


@pytest.mark.parametrize("variants, problem", [
    ([{"name": "a", "weight": 1}, {"name": "a", "weight": 2}], "action.variants[1].name: 'a' is also the name"),
    ([{"name": "a", "weight": 1}, {"name": "b", "weight": 0}], "action.variants[1].weight: 0 is less than or equal"),
    ([{"name": "a", "weight": 1}, {"name": "b", "weight": 1, "message": "{{ nope.x }}"}],
     "action.variants[1].message"),
    ([{"name": "a", "weight": 1}], "action.variants: [{'name': 'a', 'weight': 1}] is too short"),
])
def test_invalid_variants_are_refused_with_their_field(variants, problem):
    definition = {"id": "ab", "version": 1, "pattern": {"steps": [{"event": "a"}]},
                  "action": {"channel": "push", "endpoint": "p", "variants": variants}}
    with pytest.raises(CampaignError) as err:
        load_definition(definition)
    assert problem in str(err.value)


# -- goals: a conversion after a trigger (holdout too) ----------------------------------

def checkout_then(key, *later):
    user = User(campaign_set_shipped_reminder())
    user.send(event("k1", "checkout", 0, user_id=key, params={"cart_items": 2}), *later)
    return user


def campaign_set_shipped_reminder():
    return CampaignSet([shipped_campaign("checkout_reminder_ab")])


def buy(event_id, at, key, amount=30):
    return event(event_id, "purchase", at, user_id=key, params={"amount": amount})


@pytest.mark.parametrize("group", ["urgency", "holdout"])
def test_a_purchase_within_a_day_of_the_reminder_records_one_conversion(group):
    key = reminder_user(group)
    user = checkout_then(key)
    user.settle(30 * MIN)
    [trigger] = user.triggers
    user.send(buy("b1", 5 * HOUR, key), buy("b2", 6 * HOUR, key))
    [conversion] = user.conversions
    assert msgspec.to_builtins(conversion) == {
        "trigger_id": trigger.trigger_id, "campaign_id": "checkout_reminder_ab", "variant": trigger.variant,
        "holdout": group == "holdout", "user_key": key, "user_id": key, "anonymous_id": None, "event_id": "b1",
        "event_type": "purchase", "event_time": trigger.event_time + 4 * HOUR + 30 * MIN,
        "trigger_time": trigger.event_time, "latency_ms": 4 * HOUR + 30 * MIN}


def test_a_purchase_after_the_goal_window_converts_nothing():
    key = reminder_user("plain")
    user = checkout_then(key)
    user.settle(30 * MIN)
    user.send(buy("b1", 30 * MIN + 24 * HOUR + 1, key))
    assert len(user.triggers) == 1 and user.conversions == []
    user.send(buy("b2", 30 * MIN + 24 * HOUR + 2, key))
    assert user.conversions == []


GOAL_ON_ITS_OWN_EVENT = """
id: big_spender
version: 1
pattern: {steps: [{event: purchase}]}
action: {channel: email, endpoint: e}
goal: {event: purchase, within: 1h, where: event.params.amount > 50}
"""


def test_the_triggering_event_does_not_convert_and_the_goal_condition_must_hold():
    user = User(campaign_set(GOAL_ON_ITS_OWN_EVENT))
    user.send(buy("b1", 0, "u1", 100))
    assert len(user.triggers) == 1 and user.conversions == []  # its own event
    user.send(buy("b2", MIN, "u1", 20))  # a second trigger, and too small to convert the first
    assert len(user.triggers) == 2 and user.conversions == []
    user.send(buy("b3", 2 * MIN, "u1", 60))
    assert [(c.trigger_id, c.event_id) for c in user.conversions] == [(user.triggers[1].trigger_id, "b3")]


def test_a_goal_on_an_emit_campaign_is_refused():
    definition = {"id": "sig", "version": 1, "pattern": {"steps": [{"event": "a"}]}, "emit": {"event": "b"},
                  "goal": {"event": "c", "within": "1h"}}
    with pytest.raises(CampaignError, match="goal: a goal follows triggers"):
        load_definition(definition)


# -- send windows: cart_abandoned_email goes out 08:00-21:00 in the user's time zone ---------

TOKYO = {"user_id": "u1", "segments": [], "attributes": {"timezone": "Asia/Tokyo"}}
# T0 is 18:46:40 in Tokyo (UTC+9): an email due at T0 + 4 h (22:46) waits for 08:00 the next day.
OPENS = 13 * HOUR + 13 * MIN + 20 * SEC


def test_an_email_due_at_night_is_held_until_the_window_opens_with_its_event_time_unchanged(shipped):
    user = User(shipped, TOKYO)
    user.send(add("c1", 0))
    user.settle(4 * HOUR)
    assert user.fired("cart_abandoned_email") == [] and user.next_deadline == event("x", "x", OPENS).ts
    user.settle(OPENS - 1)
    assert user.fired("cart_abandoned_email") == []
    user.settle(OPENS)
    [trigger] = user.fired("cart_abandoned_email")
    assert trigger.event_time == event("x", "x", 4 * HOUR).ts
    assert trigger.scheduled_for == event("x", "x", OPENS).ts


def test_an_email_due_inside_the_window_leaves_at_once_unscheduled(shipped):
    user = User(shipped)  # no profile: UTC, where T0 + 4 h is 13:46
    user.send(add("c1", 0))
    user.settle(4 * HOUR)
    [trigger] = user.fired("cart_abandoned_email")
    assert trigger.scheduled_for is None


def test_a_purchase_while_the_email_is_held_cancels_it_a_page_view_does_not(shipped):
    bought, browsed = User(shipped, TOKYO), User(shipped, TOKYO)
    for user, kind in ((bought, "purchase"), (browsed, "page_view")):
        user.send(add("c1", 0), event("x1", kind, 5 * HOUR))
        user.settle(OPENS + HOUR)
    assert bought.fired("cart_abandoned_email") == []
    assert len(browsed.fired("cart_abandoned_email")) == 1


WINDOWED = """
id: windowed
version: 1
pattern: {steps: [{event: ping}]}
action: {channel: CHANNEL, endpoint: e}
send_window: {from: "09:00", to: "17:00", timezone: "{{ profile.attributes.timezone }}", within: WITHIN}
"""


@pytest.mark.parametrize("channel, within, reason", [
    ("popup", "1d", "popup triggers are never held"),
    ("email", "1h", "opens after send_window.within"),
])
def test_a_trigger_that_cannot_be_held_is_dropped_with_its_reason(channel, within, reason):
    campaigns = campaign_set(WINDOWED.replace("CHANNEL", channel).replace("WITHIN", within))
    user = User(campaigns, {"user_id": "u1", "segments": [], "attributes": {"timezone": "UTC"}})
    result = apply_event(None, event("p1", "ping", 8 * HOUR), campaigns, user.profile)  # 17:46 UTC: after 17:00
    assert result.triggers == [] and reason in result.dropped[0]
    assert result.user.held == []


def test_an_unknown_time_zone_is_reported_and_utc_used():
    campaigns = campaign_set(WINDOWED.replace("CHANNEL", "email").replace("WITHIN", "1d"))
    result = apply_event(None, event("p1", "ping", 8 * HOUR), campaigns,
                         {"segments": [], "attributes": {"timezone": "Mars"}})
    assert "'Mars' is not a time zone" in result.errors[0]
    [held] = result.user.held
    assert held.release == event("x", "x", 23 * HOUR + 13 * MIN + 20 * SEC).ts  # 09:00 UTC the next day


@pytest.mark.parametrize("definition, problem", [
    ({"exit": ["purchase"]}, "exit: exit cancels triggers held for the send window"),
    ({"send_window": {"from": "8:00", "to": "21:00"}}, "send_window.from: '8:00' is not valid"),
    ({"send_window": {"from": "08:00", "to": "21:00"}, "emit": {"event": "x"}, "action": None},
     "send_window: an emit campaign sends nothing"),
])
def test_invalid_send_windows_are_refused_with_their_field(definition, problem):
    base = {"id": "w", "version": 1, "pattern": {"steps": [{"event": "a"}]},
            "action": {"channel": "email", "endpoint": "e"}, **definition}
    with pytest.raises(CampaignError) as err:
        load_definition({k: v for k, v in base.items() if v is not None})
    assert problem in str(err.value)
