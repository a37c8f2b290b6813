"""The collector's logic without HTTP or Kafka: splitting bodies, accepting events, tokens."""

import msgspec
import pytest

from rtm.collector import BodyError, Limits, Tokens, TooManyEvents, accept, split_body
from rtm.errors import RtmError
from rtm.events import InvalidEvent

EVENT = b'{"event_id": "e1", "type": "page_view", "ts": "2026-11-25T09:46:40Z", "anonymous_id": "a1"}'


def test_a_body_is_one_event_a_json_array_or_ndjson_by_content_type():
    assert split_body(EVENT, "application/json", Limits()) == [EVENT]
    assert [bytes(r) for r in split_body(b" [" + EVENT + b", {}]", "text/plain", Limits())] == [EVENT, b"{}"]
    lines = split_body(EVENT + b"\r\n\n" + EVENT + b"\n", "application/x-ndjson; charset=utf-8", Limits())
    assert [line.strip() for line in lines] == [EVENT, EVENT]


def test_an_unreadable_or_empty_body_or_too_many_events_is_refused_whole():
    with pytest.raises(BodyError, match="not a JSON array"):
        split_body(b"[" + EVENT, "application/json", Limits())
    with pytest.raises(BodyError, match="no events"):
        split_body(b"  ", "application/json", Limits())
    with pytest.raises(TooManyEvents, match="3 events in one request, the limit is 2"):
        split_body(b"[{}, {}, {}]", "application/json", Limits(max_batch=2))


def test_an_accepted_event_is_keyed_by_user_key_normalised_and_stamped_with_received_at():
    event_id, key, record = accept(EVENT.replace(b'"anonymous_id"', b'"user_id": "u1", "anonymous_id"'), 42)
    written = msgspec.json.decode(record)
    assert (event_id, key) == ("e1", b"u1")
    assert written["ts"] == 1_795_600_000_000
    assert written["context"] == {"received_at": 42}


def test_a_client_received_at_is_replaced_by_the_servers_and_the_reason_of_a_bad_event_is_the_jobs():
    record = accept(EVENT[:-1] + b', "context": {"received_at": 1, "os": "ios"}}', 42)[2]
    assert msgspec.json.decode(record)["context"] == {"received_at": 42, "os": "ios"}
    with pytest.raises(InvalidEvent, match="neither user_id nor anonymous_id"):
        accept(b'{"event_id": "e1", "type": "t", "ts": 1795600000000}', 42)


def test_tokens_name_their_source_and_anything_else_is_unknown(tmp_path):
    path = tmp_path / "tokens.yaml"
    path.write_text("web: aaaaaaaaaaaaaaaa1\napp: [bbbbbbbbbbbbbbbb2, cccccccccccccccc3]\n")
    tokens = Tokens.load(path)
    assert tokens.source("Bearer aaaaaaaaaaaaaaaa1") == "web"
    assert tokens.source("bearer cccccccccccccccc3") == "app"
    assert tokens.source("Bearer aaaaaaaaaaaaaaaa") is None
    assert tokens.source("Basic aaaaaaaaaaaaaaaa1") is None
    assert tokens.source(None) is None


def test_a_tokens_file_with_short_tokens_or_no_mapping_is_refused_with_what_to_do(tmp_path):
    path = tmp_path / "tokens.yaml"
    path.write_text("web: short\n")
    with pytest.raises(RtmError, match="at least 16 characters"):
        Tokens.load(path)
    path.write_text("- just a list\n")
    with pytest.raises(RtmError, match="map each source to its token"):
        Tokens.load(path)
