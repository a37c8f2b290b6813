"""The Python half of io.rtm.flink.CampaignEngineOperator: batches in, one response out.

The requests are built here as the operator builds them (its `request`), and the responses
read as it reads them (its `apply`): the byte layout is the contract between the two.
"""

import gc
import json
import struct

import msgspec
import yaml

from engine_helpers import HOUR, MIN, T0

import rtm.engine
from rtm.arbitration import POLICY_KEY
from rtm.state import UserState, encode_state
from rtm.time_rules import TimeRules
from udfs.campaign_engine import (
    COUNTERS,
    DELETE_EVENT_TIMER,
    EVENT_TIMER,
    INPUT,
    NO_STATE,
    REGISTER_EVENT_TIMER,
    STATE_SENT_BEFORE,
    CampaignEngine,
    UserSlot,
    engine_config,
)
from udfs.rows import read_routed

CART = """
id: cart_left
version: 1
name: Cart left
pattern:
  steps:
    - event: add_to_cart
      as: cart
  absence:
    for: 1h
    event: purchase
action:
  channel: email
  endpoint: email
  message: "Your cart misses you"
"""


def _bytes(data: bytes | None) -> bytes:
    return struct.pack(">i", -1) if data is None else struct.pack(">i", len(data)) + data


def _frame(value: bytes, ts: int) -> bytes:
    """An event as io.rtm.flink.Inputs.frame writes it (kind code 0: event)."""
    topic = b"rtm.events"
    return struct.pack(">bqiqiii", 0, ts, 0, 7, -1, len(topic), len(value)) + topic + value


def _event(event_id: str, etype: str, at: int, user: str = "u1") -> tuple[str, bytes]:
    value = json.dumps({"event_id": event_id, "type": etype, "ts": T0 + at, "user_id": user}).encode()
    return user, _frame(value, T0 + at)


def request(items: list[tuple[int, str, bytes | int]], states: dict[str, bytes]) -> bytes:
    """Items (tag, user key, frame or timer timestamp), each user's state sent with its first item."""
    parts, sent = [struct.pack(">i", len(items))], set()
    for tag, key, item in items:
        parts.append(struct.pack(">b", tag) + _bytes(key.encode()))
        if key in sent:
            parts.append(struct.pack(">i", STATE_SENT_BEFORE))
        else:
            sent.add(key)
            state = states.get(key)
            parts.append(struct.pack(">i", NO_STATE) if state is None else _bytes(state))
        parts.append(_bytes(item) if tag == INPUT else struct.pack(">q", item))
    return b"".join(parts)


def response(data: bytes) -> dict:
    """The response, read as the operator reads it."""
    view, at = memoryview(data), 0

    def take(fmt):
        nonlocal at
        (value,) = struct.unpack_from(fmt, view, at)
        at += struct.calcsize(fmt)
        return value

    def blob():
        nonlocal at
        size = take(">i")
        if size < 0:
            return None
        at += size
        return bytes(view[at - size:at])

    outputs = [read_routed(blob()) for _ in range(take(">i"))]
    states = {blob().decode(): blob() for _ in range(take(">i"))}
    timers = [(take(">b"), blob().decode(), take(">q")) for _ in range(take(">i"))]
    writes = [(blob().decode(), blob().decode()) for _ in range(take(">i"))]
    counts = dict(zip(COUNTERS, (take(">i") for _ in COUNTERS)))
    assert at == len(data), "the response has bytes the operator would not read"
    return {"outputs": outputs, "states": states, "timers": timers, "writes": writes, "counts": counts}


def _engine(*texts: str) -> CampaignEngine:
    definitions = {(d := yaml.safe_load(text))["id"]: json.dumps(d) for text in texts or (CART,)}
    return CampaignEngine(engine_config(definitions, TimeRules(live=False)), 0, b"")


def test_a_users_events_in_one_batch_apply_in_order_and_leave_one_state_and_one_timer():
    engine = _engine()
    (key, first), (_, second) = _event("e1", "add_to_cart", 0), _event("e2", "page_view", MIN)
    out = response(engine.process(request([(INPUT, key, first), (INPUT, key, second)], {})))
    assert list(out["states"]) == ["u1"]  # the final state only, once
    assert out["timers"] == [(REGISTER_EVENT_TIMER, "u1", T0 + 30 * MIN)]  # the session end comes first
    assert [record.output for record in out["outputs"]] == ["sessions"]  # session_start
    assert out["counts"]["triggers"] == 0


def test_a_fired_timer_settles_the_absence_with_the_state_the_batch_carried():
    engine = _engine()
    key, cart = _event("e1", "add_to_cart", 0)
    first = response(engine.process(request([(INPUT, key, cart)], {})))
    state = first["states"]["u1"]
    # The lazy timer fires at the session end first, then at the absence deadline.
    timers = response(engine.process(request([(EVENT_TIMER, "u1", T0 + 30 * MIN)], {"u1": state})))
    assert timers["timers"] == [(REGISTER_EVENT_TIMER, "u1", T0 + HOUR)]
    fired = response(engine.process(request([(EVENT_TIMER, "u1", T0 + HOUR)], {"u1": timers["states"]["u1"]})))
    triggers = [json.loads(record.value) for record in fired["outputs"] if record.output == "triggers"]
    assert [(t["campaign_id"], t["event_time"]) for t in triggers] == [("cart_left", T0 + HOUR)]
    assert fired["counts"]["triggers"] == 1


def test_a_timer_of_a_user_without_state_changes_nothing():
    out = response(_engine().process(request([(EVENT_TIMER, "gone", T0)], {})))
    assert out["outputs"] == [] and out["states"] == {} and out["timers"] == []


def test_a_record_that_cannot_be_parsed_is_dead_lettered_and_the_next_one_still_applies():
    engine = _engine()
    key, good = _event("e1", "add_to_cart", 0)
    bad = _frame(b"{not json", T0)
    out = response(engine.process(request([(INPUT, key, bad), (INPUT, key, good)], {})))
    letters = [json.loads(record.value) for record in out["outputs"] if record.output == "dlq"]
    assert [(letter["offset"], letter["topic"]) for letter in letters] == [(7, "rtm.events")]
    assert out["counts"]["dead_letters"] == 1
    assert "u1" in out["states"]  # the good event after it applied


def test_a_timer_armed_early_stays_then_fires_settles_nothing_and_rearms_at_the_deadline():
    engine = _engine()
    key, page = _event("e1", "page_view", 0)
    first = response(engine.process(request([(INPUT, key, page)], {})))
    assert first["timers"] == [(REGISTER_EVENT_TIMER, "u1", T0 + 30 * MIN)]
    # An event 1 min later moves the session end to 31 min: the armed timer stays (no call).
    key, cart = _event("e2", "add_to_cart", MIN)
    second = response(engine.process(request([(INPUT, key, cart)], {"u1": first["states"]["u1"]})))
    assert second["timers"] == []
    fired = response(engine.process(request([(EVENT_TIMER, "u1", T0 + 30 * MIN)], {"u1": second["states"]["u1"]})))
    assert fired["outputs"] == []  # nothing was due yet
    assert fired["timers"] == [(REGISTER_EVENT_TIMER, "u1", T0 + 31 * MIN)]  # it fired: nothing to delete


def test_a_deadline_earlier_than_the_armed_timer_moves_it_with_a_delete_and_a_register():
    engine = _engine(CART, CART.replace("cart_left", "quick_nudge").replace("for: 1h", "for: 10m")
                     .replace("add_to_cart", "view_item"))
    key, page = _event("e1", "page_view", 0)
    first = response(engine.process(request([(INPUT, key, page)], {})))
    key, item = _event("e2", "view_item", MIN)  # quick_nudge's absence ends at 11 min, before the session
    second = response(engine.process(request([(INPUT, key, item)], {"u1": first["states"]["u1"]})))
    assert second["timers"] == [(DELETE_EVENT_TIMER, "u1", T0 + 30 * MIN), (REGISTER_EVENT_TIMER, "u1", T0 + 11 * MIN)]


def _campaign_record(key: str, value: bytes) -> bytes:
    """A record of rtm.campaigns as io.rtm.flink.Inputs.frame writes it (kind code 2: campaign)."""
    topic, key_bytes = b"rtm.campaigns", key.encode()
    return (struct.pack(">bqiqiii", 2, 0, 0, 3, len(key_bytes), len(topic), len(value)) + key_bytes + topic
            + value)


def test_a_refused_campaign_or_policy_update_is_dead_lettered_by_its_name_and_only_an_accepted_one_is_kept():
    engine = _engine()
    refused_campaign = response(engine.broadcast(_campaign_record("cart_left", b'{"id": "other"}')))
    refused_policy = response(engine.broadcast(_campaign_record(POLICY_KEY, b'{"caps": "none"}')))
    reasons = [json.loads(out["outputs"][0].value)["reason"] for out in (refused_campaign, refused_policy)]
    assert reasons[0].startswith("campaign rejected, the previous version stays active")
    assert reasons[1].startswith("policy rejected, the previous version stays active")
    assert refused_campaign["writes"] == refused_policy["writes"] == []
    assert refused_policy["counts"]["rejected_campaigns"] == 1
    accepted = response(engine.broadcast(_campaign_record(POLICY_KEY, json.dumps(
        {"caps": [{"channel": "email", "max": 1, "per": "1d"}]}).encode())))
    assert accepted["outputs"] == [] and [key for key, _ in accepted["writes"]] == [POLICY_KEY]


def _engine_state(slot: bytes) -> UserState:
    return msgspec.msgpack.decode(slot, type=UserSlot).engine


def test_an_event_the_engine_fails_on_half_way_leaves_the_users_state_as_it_was_before_it(monkeypatch):
    engine = _engine()
    (key, e1), (_, e2), (_, e3) = (_event(f"e{i}", "add_to_cart", i * MIN) for i in (1, 2, 3))
    expected = _engine_state(response(engine.process(request([(INPUT, key, e1), (INPUT, key, e3)], {})))
                             ["states"]["u1"])
    feed = rtm.engine._feed

    def fails_on_e2(scope, *args):  # after the session and the dedup ids took the event in
        if scope.event_id == "e2":
            raise RuntimeError("boom")
        return feed(scope, *args)

    monkeypatch.setattr(rtm.engine, "_feed", fails_on_e2)
    out = response(engine.process(request([(INPUT, key, e1), (INPUT, key, e2), (INPUT, key, e3)], {})))
    [letter] = [json.loads(record.value) for record in out["outputs"] if record.output == "dlq"]
    assert "the engine failed on this event" in letter["reason"] and "boom" in letter["reason"]
    assert _engine_state(out["states"]["u1"]) == expected  # e2 left no trace: not counted, not seen


def test_a_slot_of_an_earlier_version_with_the_engines_state_nested_as_bytes_restores():
    engine = _engine()
    key, first = _event("e1", "page_view", 0)
    state = _engine_state(response(engine.process(request([(INPUT, key, first)], {})))["states"]["u1"])
    earlier = msgspec.msgpack.encode([encode_state(state), None, T0 + 30 * MIN, None, None])
    key, second = _event("e2", "page_view", MIN)
    out = response(engine.process(request([(INPUT, key, second)], {"u1": earlier})))
    assert _engine_state(out["states"]["u1"]).session.count == 2
    assert out["timers"] == []  # the armed timer was read from the old slot too


def _collections_during_a_batch(users: int) -> int:
    """Cyclic collections while the engine processes one event of each of `users` users,
    with the collector's threshold at one allocation."""
    engine = _engine()
    request_bytes = request([(INPUT, *_event(f"e{i}", "add_to_cart", i * MIN, user=f"u{i}")) for i in range(users)], {})
    started = []

    def count(phase, info):
        if phase == "start":
            started.append(info["generation"])

    threshold = gc.get_threshold()
    gc.callbacks.append(count)
    gc.set_threshold(1)
    try:
        engine.process(request_bytes)
    finally:
        gc.set_threshold(*threshold)
        gc.callbacks.remove(count)
    assert gc.isenabled()
    return len(started)


def test_a_batch_pauses_the_cyclic_collector_whatever_its_size():
    # Only the call's own edges may collect (entering and leaving the pause, a few), never
    # per item: without the pause, 200 users cost well over a thousand collections here.
    assert _collections_during_a_batch(200) <= 10
