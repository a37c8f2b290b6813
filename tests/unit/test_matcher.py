"""rtm.matcher: one campaign's step per event says what happened to the partial match."""

from rtm.matcher import Outcome, step
from rtm.state import UserState
from rtm.views import EventScope

from engine_helpers import MIN, campaign_set, event

CAMPAIGNS = campaign_set("""
id: cart
version: 1
audience: {exclude: [{event: page_view, where: event.params.page == "support"}]}
pattern:
  steps: [{event: add_to_cart}, {event: checkout}]
  unless: [purchase]
  absence: {for: 1h, event: add_to_cart}
action: {channel: push, endpoint: p}
""")
CART = CAMPAIGNS.get("cart")
PROFILE = {"segments": [], "attributes": {}}


def offer(user, e):
    progress = user.progress.get("cart")
    errors = []
    outcome = step(CART, progress, EventScope(e, user, PROFILE, False, False), False, errors)
    assert errors == []
    return outcome


def new_user():
    return UserState(0, 0, "u1", None, 1)


def test_a_match_starts_advances_and_then_waits_for_its_absence():
    user = new_user()
    assert offer(user, event("c", "checkout", 0)) is Outcome.IGNORED and user.progress == {}
    assert offer(user, event("a", "add_to_cart", MIN)) is Outcome.ADVANCED
    assert offer(user, event("p", "page_view", 2 * MIN)) is Outcome.IGNORED
    assert offer(user, event("k", "checkout", 3 * MIN)) is Outcome.AWAITING
    assert user.progress["cart"].run.deadline == event("k", "checkout", 63 * MIN).ts


def test_unless_drops_the_match_and_an_absence_event_restarts_it():
    user = new_user()
    offer(user, event("a", "add_to_cart", 0))
    assert offer(user, event("p", "purchase", MIN)) is Outcome.DROPPED and user.progress["cart"].run is None
    offer(user, event("a2", "add_to_cart", 2 * MIN))
    offer(user, event("k", "checkout", 3 * MIN))
    assert offer(user, event("a3", "add_to_cart", 4 * MIN)) is Outcome.ADVANCED  # waited, broken, started again
    assert user.progress["cart"].run.ids == ["a3"]


def test_an_excluded_event_mutes_the_campaign_for_the_session():
    user = new_user()
    offer(user, event("a", "add_to_cart", 0))
    assert offer(user, event("s", "page_view", MIN, params={"page": "support"})) is Outcome.MUTED
    assert offer(user, event("a2", "add_to_cart", 2 * MIN)) is Outcome.IGNORED


def test_a_completed_match_is_left_for_the_engine_to_fire():
    campaigns = campaign_set("""
id: two
version: 1
pattern: {steps: [{event: a}, {event: b}]}
action: {channel: push, endpoint: p}
""")
    user = new_user()
    scope = lambda e: EventScope(e, user, PROFILE, False, False)  # noqa: E731
    assert step(campaigns.get("two"), None, scope(event("1", "a", 0)), False, []) is Outcome.ADVANCED
    assert step(campaigns.get("two"), user.progress["two"], scope(event("2", "b", 1)), False, []) is Outcome.COMPLETED
    assert user.progress["two"].run.ids == ["1", "2"]


def test_an_absence_event_that_cannot_start_the_pattern_postpones_and_keeps_the_match():
    campaigns = campaign_set("""
id: idle
version: 1
pattern:
  steps: [{event: add_to_cart, as: cart}]
  absence: {for: 1h, event: "*"}
action: {channel: push, endpoint: p, message: "{{ cart.params.sku }}"}
""")
    idle, user = campaigns.get("idle"), new_user()

    def offer_idle(e):
        return step(idle, user.progress.get("idle"), EventScope(e, user, PROFILE, False, False), False, [])

    assert offer_idle(event("a", "add_to_cart", 0, params={"sku": "s1"})) is Outcome.AWAITING
    assert offer_idle(event("p", "page_view", 30 * MIN)) is Outcome.AWAITING  # postponed
    run = user.progress["idle"].run
    assert run.deadline == event("p", "page_view", 90 * MIN).ts
    assert run.ids == ["a"] and run.binds["cart"]["params"] == {"sku": "s1"}
    assert offer_idle(event("a2", "add_to_cart", 40 * MIN, params={"sku": "s2"})) is Outcome.AWAITING  # restarted
    run = user.progress["idle"].run
    assert run.ids == ["a2"] and run.binds["cart"]["params"] == {"sku": "s2"}
    assert run.start == run.deadline - 60 * MIN
