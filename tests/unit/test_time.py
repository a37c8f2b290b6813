"""docs/CONTRACTS.md, "Time": what is due by an event's time is settled before the event is applied."""

from rtm.engine import EngineConfig, apply_event, decode_state, encode_state

from engine_helpers import HOUR, MIN, SEC, T0, User, campaign_set, event

DAY = 24 * HOUR


def add(event_id, at):
    return event(event_id, "add_to_cart", at, params={"sku": "s1"})


def test_event_after_a_passed_deadline_sees_the_deadline_fire_first_with_its_own_time(shipped):
    user = User(shipped)
    user.send(add("c1", 0))
    # No timer ran; the next event comes an hour after the 4 h deadline.
    fired = user.send(event("v1", "page_view", 5 * HOUR, params={"section": "hats"}))
    assert [t.campaign_id for t in fired] == ["cart_abandoned_email", "cart_idle_push", "store_section_popup"]
    assert [t.event_time for t in fired] == [T0 + 4 * HOUR, T0 + 4 * HOUR, T0 + 5 * HOUR]


def test_deadline_due_exactly_at_the_event_time_fires_before_it(shipped):
    user = User(shipped)
    user.send(add("c1", 0))
    fired = user.send(add("c2", 4 * HOUR))  # would restart the wait if applied first
    assert [(t.campaign_id, t.matched_event_ids[0]) for t in fired] == [
        ("cart_abandoned_email", "c1"), ("cart_idle_push", "c1")]


def test_a_deadline_not_yet_due_does_not_fire_and_the_event_restarts_it(shipped):
    user = User(shipped)
    user.send(add("c1", 0), add("c2", 4 * HOUR - 1))
    assert user.fired("cart_abandoned_email") == []


def test_session_gap_is_closed_before_the_next_event_opens_a_new_session(shipped):
    user = User(shipped)
    user.send(event("a", "page_view", 0), event("b", "page_view", 10 * MIN))
    user.send(event("c", "page_view", 45 * MIN))  # 35 min after the last event; no timer ran
    assert [(s.kind, s.index) for s in user.sessions] == [
        ("session_start", 1), ("session_end", 1), ("session_start", 2)]
    end = user.sessions[1]
    assert (end.start, end.end, end.event_count, end.pages) == (T0, T0 + 10 * MIN, 2, 2)
    assert user.sessions[2].session_id != end.session_id


def test_a_timer_closes_the_session_of_a_quiet_user(shipped):
    user = User(shipped)
    user.send(event("a", "login", 0, context={"platform": "ios"}))
    assert user.next_deadline == T0 + 30 * MIN
    user.settle(30 * MIN - 1)
    assert [s.kind for s in user.sessions] == ["session_start"]
    user.settle(30 * MIN)
    assert [s.kind for s in user.sessions] == ["session_start", "session_end"]
    assert user.sessions[1].platform == "ios"


def test_settle_is_idempotent_and_a_stale_timer_does_nothing(shipped):
    user = User(shipped)
    user.send(add("c1", 0))
    user.settle(MIN)  # an old timer: nothing is due
    assert user.triggers == [] and len(user.sessions) == 1
    user.settle(5 * HOUR)
    user.settle(5 * HOUR)
    assert len(user.fired("cart_abandoned_email")) == 1


def test_next_deadline_is_the_earliest_of_session_gap_and_campaign_deadlines():
    quick = campaign_set("""
id: quick
version: 1
pattern: {steps: [{event: add_to_cart}], absence: {for: 10m, event: add_to_cart}}
action: {channel: push, endpoint: p}
""")
    user = User(quick)
    user.send(add("c1", 0))
    assert user.next_deadline == T0 + 10 * MIN
    user.settle(10 * MIN)
    assert len(user.triggers) == 1 and user.next_deadline == T0 + 30 * MIN


def test_users_who_never_return_are_forgotten_after_the_idle_expiry(shipped):
    config = EngineConfig(idle_expiry_ms=7 * DAY)
    user = User(shipped, config=config)
    user.send(event("l", "page_view", 0, params={"page": "landing"}))
    user.settle(HOUR)
    assert user.state is not None and user.next_deadline == T0 + 7 * DAY
    user.settle(7 * DAY)
    assert user.state is None and user.next_deadline is None
    # Forgotten means forgotten: the next visit counts as a first visit.
    user.send(event("l2", "page_view", 8 * DAY, params={"page": "landing"}))
    assert len(user.fired("welcome_coupon")) == 2


def test_expiry_waits_for_a_pending_deadline():
    slow = campaign_set("""
id: slow
version: 1
pattern: {steps: [{event: add_to_cart}], absence: {for: 10d}}
action: {channel: email, endpoint: e}
""")
    user = User(slow, config=EngineConfig(idle_expiry_ms=7 * DAY))
    user.send(add("c1", 0))
    user.settle(8 * DAY)
    assert user.state is not None and user.next_deadline == T0 + 10 * DAY
    user.settle(10 * DAY)
    assert len(user.triggers) == 1  # the deadline fired, then the idle user was forgotten
    assert user.state is None


def test_the_dedup_set_is_pruned_by_the_event_time_horizon(shipped):
    config = EngineConfig(dedup_horizon_ms=10 * MIN)
    user = User(shipped, config=config)
    user.send(event("e1", "login", 0), event("e1", "login", 5 * MIN))
    assert user.duplicates == 1
    user.send(event("e2", "login", 20 * MIN), event("e1", "login", 21 * MIN))  # e1 is now outside the horizon
    assert user.duplicates == 1
    assert len(decode_state(user.state).seen) == 2


def test_dedup_keeps_at_most_the_configured_number_of_ids(shipped):
    config = EngineConfig(dedup_max_ids=5)
    user = User(shipped, config=config)
    user.send(*(event(f"e{i}", "login", i * SEC) for i in range(20)))
    assert len(decode_state(user.state).seen) == 5


def test_an_event_far_behind_the_users_latest_is_dropped_as_late(shipped):
    user = User(shipped)
    user.send(event("a", "login", HOUR))
    state = decode_state(user.state)
    result = apply_event(state, event("old", "add_to_cart", HOUR - 6 * MIN), shipped, None)
    assert result.late and result.triggers == []
    assert result.user is state and encode_state(state) == user.state  # unchanged
    slightly = apply_event(decode_state(user.state), event("ok", "page_view", HOUR - 4 * MIN), shipped, None)
    assert not slightly.late and slightly.user.session.count == 2
