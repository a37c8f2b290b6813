"""Synthetic traffic is valid, reproducible and in event-time order."""

import json

from rtm.events import parse_event
from rtm.generator import generate


def test_the_same_seed_gives_the_same_events():
    assert list(generate(20, seed=3)) == list(generate(20, seed=3))
    assert list(generate(20, seed=3)) != list(generate(20, seed=4))


def test_every_generated_event_meets_the_event_contract_in_time_order():
    events = [parse_event(json.dumps(e)) for e in generate(50)]
    assert len({e.event_id for e in events}) == len(events)
    assert [e.ts for e in events] == sorted(e.ts for e in events)
    assert {e.type for e in events} >= {"page_view", "add_to_cart", "login", "play"}
