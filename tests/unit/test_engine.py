"""Engine behaviour beyond the scenarios: dedup, versions, retirement, state size, determinism."""

import msgspec
import pytest
import yaml

from rtm.campaigns import CampaignError, CampaignSet
from rtm.engine import EngineConfig, apply_event, decode_state, encode_state, settle

from engine_helpers import HOUR, MIN, SEC, T0, User, campaign_set, event

THREE = """
id: three
version: 1
pattern: {steps: [{event: page_view, times: 3}]}
action: {channel: push, endpoint: p}
"""


def pv(event_id, at):
    return event(event_id, "page_view", at)


def definition(text: str, **changes) -> dict:
    return {**yaml.safe_load(text), **changes}


def test_duplicate_event_is_dropped_and_reported(shipped):
    user = User(shipped)
    first = user.state
    user.send(pv("p1", 0))
    state = decode_state(user.state)
    result = apply_event(state, pv("p1", SEC), shipped, None)
    assert result.duplicate and result.triggers == [] and first is None
    assert result.user is state and encode_state(state) == user.state  # unchanged


def test_duplicates_do_not_count_towards_a_pattern():
    user = User(campaign_set(THREE))
    user.send(pv("p1", 0), pv("p1", SEC), pv("p2", 2 * SEC), pv("p2", 3 * SEC))
    assert user.triggers == [] and user.duplicates == 2


def test_a_new_version_drops_the_old_partial_match_but_not_the_new_one():
    campaigns = campaign_set(THREE)
    user = User(campaigns)
    user.send(pv("p1", 0), pv("p2", SEC))  # 2 of 3 under version 1
    campaigns.upsert(definition(THREE, version=2, name="now v2"))
    user.send(pv("p3", 2 * SEC))
    assert user.triggers == []  # not completed with v1's progress
    user.send(pv("p4", 3 * SEC), pv("p5", 4 * SEC))
    [trigger] = user.triggers
    assert trigger.campaign_version == 2 and trigger.matched_event_ids == ["p3", "p4", "p5"]


def test_retiring_a_campaign_drops_its_state_on_the_next_touch():
    campaigns = campaign_set(THREE)
    user = User(campaigns)
    user.send(pv("p1", 0))
    assert "three" in decode_state(user.state).progress
    assert campaigns.retire("three") and not campaigns.retire("three")
    user.send(event("x", "login", SEC))
    assert decode_state(user.state).progress == {}


def test_upsert_rules_keep_the_running_version_on_any_error():
    campaigns = campaign_set(THREE)
    running = campaigns.get("three")
    assert campaigns.upsert(definition(THREE)) is running  # republishing is a no-op
    with pytest.raises(CampaignError, match="bump the version"):
        campaigns.upsert(definition(THREE, name="changed"))
    with pytest.raises(CampaignError, match="pattern"):
        campaigns.upsert(definition(THREE, version=2, pattern={"steps": []}))
    assert campaigns.get("three") is running
    campaigns.upsert(definition(THREE, version=3))
    with pytest.raises(CampaignError, match="older than the running version 3"):
        campaigns.upsert(definition(THREE, version=2))


def test_definitions_from_the_topic_are_json_and_load_like_yaml():
    as_json = msgspec.json.encode(yaml.safe_load(THREE))
    campaigns = CampaignSet.from_definitions({"three": as_json})
    assert campaigns.get("three").fingerprint == campaign_set(THREE).get("three").fingerprint
    with pytest.raises(CampaignError, match="not JSON"):
        campaigns.upsert(b"{nope")


def test_campaigns_are_indexed_by_the_event_types_their_first_step_consumes(shipped):
    ids = lambda cs: [c.id for c in cs]  # noqa: E731
    assert ids(shipped.starting("checkout", synthetic=False)) == ["checkout_reminder_ab", "user_left_game",
                                                                  "vip_checkout_recommendations"]
    assert ids(shipped.starting("purchase", synthetic=False)) == ["user_left_game"]  # "*" listens to any real event
    assert ids(shipped.starting("user_left_game", synthetic=True)) == ["game_come_back_email"]
    assert ids(shipped.starting("unheard_of", synthetic=True)) == []


def test_a_partial_match_wakes_its_campaign_for_the_next_step_only():
    campaigns = campaign_set("""
id: two_steps
version: 1
pattern: {steps: [{event: a}, {event: b}], unless: [c]}
action: {channel: push, endpoint: p}
""")
    assert [c.id for c in campaigns.starting("b", False)] == []
    wakes = campaigns.get("two_steps").wakes
    assert wakes[1].has("b", False) and wakes[1].has("c", False) and not wakes[1].has("a", False)
    user = User(campaigns)
    user.send(event("1", "a", 0), event("2", "b", SEC))
    assert [t.matched_event_ids for t in user.triggers] == [["1", "2"]]


def test_the_same_input_gives_the_same_output_and_trigger_ids(shipped):
    def run():
        user = User(shipped)
        user.send(*(event(f"e{i}", t, i * MIN, params={"section": "x", "sku": "s"})
                    for i, t in enumerate(["page_view", "add_to_cart", "page_view", "page_view"])))
        user.settle(10 * HOUR)
        return user.triggers, user.sessions, user.state

    first, second = run(), run()
    assert first == second and len(first[0]) >= 3
    assert len({t.trigger_id for t in first[0]}) == len(first[0])


def test_trigger_id_depends_on_the_campaign_version():
    a, b = User(campaign_set(THREE)), User(campaign_set(THREE.replace("version: 1", "version: 2")))
    for user in (a, b):
        user.send(pv("p1", 0), pv("p2", 1), pv("p3", 2))
    assert a.triggers[0].trigger_id != b.triggers[0].trigger_id


def test_machine_back_in_its_initial_state_drops_the_match():
    campaigns = campaign_set("""
id: m
version: 1
pattern:
  machine:
    initial: out
    transitions:
      - {from: out, event: login, to: in}
      - {from: in, event: logout, to: out}
      - {from: in, event: buy, to: bought}
    fire_on: [bought]
action: {channel: push, endpoint: p}
""")
    user = User(campaigns)
    user.send(event("1", "login", 0), event("2", "logout", 1), event("3", "buy", 2))
    assert user.triggers == []
    user.send(event("4", "login", 3), event("5", "buy", 4))
    assert [t.matched_event_ids for t in user.triggers] == [["4", "5"]]


def test_at_least_and_at_most_steps():
    campaigns = campaign_set("""
id: range
version: 1
pattern:
  steps:
    - {event: add_to_cart, at_least: 2, at_most: 3}
    - {event: checkout}
action: {channel: push, endpoint: p}
""")
    user = User(campaigns)
    user.send(event("a1", "add_to_cart", 0), event("c1", "checkout", 1))  # one add is too few
    assert user.triggers == []
    user.send(*(event(f"a{i}", "add_to_cart", i) for i in range(2, 7)), event("c2", "checkout", 10))
    # The first match takes at most 3 adds; later adds are ignored until checkout.
    assert [t.matched_event_ids for t in user.triggers] == [["a1", "a2", "a3", "c2"]]


def test_runtime_condition_errors_are_reported_not_raised():
    campaigns = campaign_set("""
id: typed
version: 1
pattern: {steps: [{event: checkout, where: event.params.cart_items < 4}]}
action: {channel: push, endpoint: p}
""")
    result = apply_event(None, event("1", "checkout", 0, params={"cart_items": "three"}), campaigns, None)
    assert result.triggers == []
    assert result.errors[0].startswith("typed: pattern.steps[0].where: TypeError") and "(event 1)" in result.errors[0]


def test_a_campaign_that_emits_what_it_listens_to_is_cut_off():
    campaigns = campaign_set("""
id: echo
version: 1
pattern: {steps: [{event: [ping, echo]}]}
emit: {event: echo}
""")
    result = apply_event(None, event("1", "ping", 0), campaigns, None)
    assert result.errors and "deeper than" in result.errors[0]


def test_state_size_of_typical_users_is_small(shipped, capsys):
    cases = {
        "one page view": [pv("p1", 0)],
        "browsing with a cart": [pv("p1", 0), event("a1", "add_to_cart", MIN, params={"sku": "s", "name": "n"}),
                                 event("v", "page_view", 2 * MIN, params={"section": "hats"})],
        "gamer": [event(f"g{i}", t, i * MIN, context={"app": "game"}, params={"game": "chess"})
                  for i, t in enumerate(["login", "main_screen", "chat", "main_screen", "play"])],
        "100 events in 100 min": [pv(f"p{i}", i * MIN) for i in range(100)],
    }
    sizes = {}
    for name, events in cases.items():
        user = User(shipped)
        user.send(*events)
        sizes[name] = len(user.state)
    with capsys.disabled():
        print("\nengine state size (bytes):", ", ".join(f"{k}: {v}" for k, v in sizes.items()))
    assert sizes["one page view"] < 200
    assert max(sizes.values()) < 3000  # the dedup ids (<= 128 x 18 bytes) dominate busy users


def test_a_campaign_reading_the_session_id_gets_the_id_of_the_session_records():
    campaigns = campaign_set("""
id: needs_id
version: 1
pattern: {steps: [{event: page_view, where: session.pages == 2}]}
action: {channel: push, endpoint: p, data: {session: "{{ session.id }}"}}
""", """
id: no_id
version: 1
pattern: {steps: [{event: page_view, where: session.pages == 1}]}
action: {channel: push, endpoint: p, data: {pages: "{{ session.pages }}"}}
""")
    assert campaigns.reads_session_id and not campaigns.get("no_id").reads_session_id
    user = User(campaigns)
    user.send(pv("p1", 0), pv("p2", SEC))
    assert [t.data for t in user.triggers] == [{"pages": 1}, {"session": user.sessions[0].session_id}]


def test_a_state_saved_before_session_caps_existed_restores_and_counts_from_there(shipped):
    sale = shipped.get("sale_popup")
    # UserState and Progress as msgpack arrays, Progress with the five fields it had before
    # fired_session/fired_in_session: what older checkpoints and savepoints hold.
    session = [1, event("x", "x", 0).ts, event("x", "x", 0).ts, 1, 1, None]
    old = msgspec.msgpack.encode([session[1], session[1], "u1", None, 1, session, {},
                                  {"sale_popup": [sale.fingerprint, None, 3, [], 0]}])
    state = decode_state(old)
    progress = state.progress["sale_popup"]
    assert (progress.fired, progress.fired_in_session, progress.goal) == (3, 0, None)
    user = User(shipped)
    user.state = old
    user.send(event("s1", "page_view", MIN, params={"section": "sale"}),
              event("s2", "page_view", 2 * MIN, params={"section": "sale"}))
    assert [t.matched_event_ids for t in user.fired("sale_popup")] == [["s1"]]


def test_without_timer_and_session_records_a_call_changes_the_state_alike_and_skips_only_those(shipped):
    # What preview asks for: the same triggers and states, no timer to arm, no session records.
    events = [pv("p1", 0), event("c1", "add_to_cart", MIN, params={"sku": "s"}), pv("p2", 2 * HOUR),
              pv("p3", 2 * HOUR + SEC)]
    full, lean = None, None
    for e in events:
        expected = apply_event(full, e, shipped, None)
        got = apply_event(lean, e, shipped, None, timer=False, session_records=False)
        full, lean = expected.user, got.user
        assert expected.next_deadline is not None and got.next_deadline is None
        assert got.sessions is None and got.triggers == expected.triggers
        assert encode_state(lean) == encode_state(full)
    expected = settle(full, T0 + 6 * HOUR, shipped, None)
    got = settle(lean, T0 + 6 * HOUR, shipped, None, timer=False, session_records=False)
    assert [r.kind for r in expected.sessions] == ["session_end"] and got.sessions is None
    assert [t.campaign_id for t in expected.triggers] == ["cart_abandoned_email"]
    assert got.triggers == expected.triggers and got.next_deadline is None
    assert encode_state(got.user) == encode_state(expected.user)


IDLE = """
id: idle
version: 1
pattern: {steps: [{event: add_to_cart}], absence: {for: 1h, event: purchase}}
action: {channel: push, endpoint: p}
"""
HELD = """
id: held
version: 1
pattern: {steps: [{event: ping}]}
action: {channel: email, endpoint: e}
send_window: {from: "09:00", to: "17:00", timezone: UTC, within: 1d}
"""
NEXT_NINE_UTC = 23 * HOUR + 13 * MIN + 20 * SEC  # T0 is 09:46:40 UTC


@pytest.mark.parametrize("definition, first, start, due", [
    pytest.param(IDLE, "add_to_cart", 0, HOUR, id="absence deadline"),
    pytest.param(HELD, "ping", 8 * HOUR, NEXT_NINE_UTC, id="held trigger's release"),  # ping at 17:46 UTC
])
def test_an_event_at_the_time_something_is_due_settles_it_first_and_one_a_millisecond_before_does_not(
        definition, first, start, due):
    campaigns = campaign_set(definition)
    # One session throughout: the call at `due` has nothing else due, only the deadline or release.
    config = EngineConfig(session_gap_ms=2 * 24 * HOUR)
    before, at = User(campaigns, config=config), User(campaigns, config=config)
    for user in (before, at):
        assert user.send(event("e1", first, start)) == []
    assert before.send(event("e2", "page_view", due - 1)) == []
    [trigger] = at.send(event("e2", "page_view", due))
    assert (trigger.scheduled_for or trigger.event_time) == T0 + due
