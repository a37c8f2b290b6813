"""The event and profile contracts: parse, normalise, reject with a reason."""

import re

import pytest

from rtm.events import InvalidEvent, InvalidProfile, parse_event, parse_profile


def test_iso_and_millis_timestamps_normalise_to_the_same_epoch_millis():
    iso = parse_event(b'{"event_id":"e","type":"t","ts":"2026-11-25T14:45:00.123+01:00","user_id":"u"}')
    millis = parse_event(b'{"event_id":"e","type":"t","ts":1795614300123,"user_id":"u"}')
    assert iso.ts == millis.ts == 1_795_614_300_123


def test_user_key_is_user_id_when_present_else_anonymous_id():
    both = parse_event(b'{"event_id":"e","type":"t","ts":1795614300000,"user_id":"u","anonymous_id":"a"}')
    anon = parse_event(b'{"event_id":"e","type":"t","ts":1795614300000,"user_id":null,"anonymous_id":"a"}')
    assert (both.key, anon.key) == ("u", "a")


def test_optional_objects_default_to_empty():
    e = parse_event(b'{"event_id":"e","type":"t","ts":1795614300000,"anonymous_id":"a"}')
    assert e.params == {} and e.context == {}


@pytest.mark.parametrize("raw, reason", [
    (b"not json", "not JSON"),
    (b"[1]", "Expected `object`"),
    (b'{"type":"t","ts":1795614300000,"user_id":"u"}', "missing required field `event_id`"),
    (b'{"event_id":"e","type":7,"ts":1795614300000,"user_id":"u"}', "`$.type`"),
    (b'{"event_id":"","type":"t","ts":1795614300000,"user_id":"u"}', "event_id is empty"),
    (b'{"event_id":"e","type":"t","ts":1795614300000}', "neither user_id nor anonymous_id"),
    (b'{"event_id":"e","type":"t","ts":1795614300,"user_id":"u"}', "epoch seconds"),
    (b'{"event_id":"e","type":"t","ts":"yesterday","user_id":"u"}', "not ISO-8601"),
    (b'{"event_id":"e","type":"t","ts":"2026-11-25T10:00:00","user_id":"u"}', "no UTC offset"),
    (b'{"event_id":"e","type":"t","ts":1795614300000,"user_id":"u","params":[]}', "`$.params`"),
    (b'\xff\xfe', "not JSON"),
    (b'{"event_id":"e","type":"t","ts":1000000000000000000000000000000,"user_id":"u"}', "after the year 9999"),
    (b'{"event_id":"e","type":"t","ts":1795614300000,"user_id":"u","params":' + b'{"a":' * 10_000 + b"1"
     + b"}" * 10_001, "nested too deep"),
])
def test_invalid_events_raise_with_the_reason(raw, reason):
    with pytest.raises(InvalidEvent, match=re.escape(reason)):
        parse_event(raw)


def test_profile_parses_and_a_tombstone_is_none():
    profile = parse_profile(b'{"user_id":"u1","segments":["vip"],"attributes":{"ltv":1200}}')
    assert profile == {"user_id": "u1", "segments": ["vip"], "attributes": {"ltv": 1200}, "updated_at": None}
    assert parse_profile(None) is None


@pytest.mark.parametrize("raw", [b"{}", b'{"user_id":"u","segments":"vip"}', b"nope", b'{"user_id":""}'])
def test_invalid_profiles_raise(raw):
    with pytest.raises(InvalidProfile):
        parse_profile(raw)
