"""The skeleton job moves every event once, keyed by user key; bad records go to the DLQ."""

import json

from jobs.environment import local_environment
from jobs import events_by_user
from kafka_helpers import consume_all, produce


def _event(i: int) -> dict:
    event = {"event_id": f"e{i}", "type": "page_view", "ts": 1_790_000_000_000 + i}
    # Known users by user_id; anonymous visitors only by their device id.
    event["user_id" if i % 3 else "anonymous_id"] = f"u{i % 7}"
    return event


def test_every_event_arrives_exactly_once_keyed_by_user_key(kafka_bootstrap, new_topic):
    source, output, dlq = new_topic("events", partitions=2), new_topic("out"), new_topic("dlq")
    events = [_event(i) for i in range(500)]
    # The message key on the way in is not trusted: the user key comes from the payload.
    produce(kafka_bootstrap, source, [(b"ignored", json.dumps(e).encode()) for e in events])

    events_by_user.run(
        local_environment(), kafka_bootstrap, source_topic=source, output_topic=output, dlq_topic=dlq, bounded=True
    )

    out = consume_all(kafka_bootstrap, output, expected=len(events) + 1, timeout_s=20)
    received = sorted((m.key().decode(), json.loads(m.value())["event_id"]) for m in out)
    expected = sorted((e.get("user_id") or e["anonymous_id"], e["event_id"]) for e in events)
    assert received == expected
    assert consume_all(kafka_bootstrap, dlq, expected=1, timeout_s=2) == []


def test_bad_records_go_to_the_dlq_with_reason_and_origin(kafka_bootstrap, new_topic):
    source, output, dlq = new_topic("events"), new_topic("out"), new_topic("dlq")
    good = json.dumps(_event(1)).encode()
    produce(
        kafka_bootstrap,
        source,
        [(b"k", b"not json"), (b"k", None), (b"k", b'{"type": "x"}'), (b"k", good)],
    )

    events_by_user.run(
        local_environment(), kafka_bootstrap, source_topic=source, output_topic=output, dlq_topic=dlq, bounded=True
    )

    letters = [json.loads(m.value()) for m in consume_all(kafka_bootstrap, dlq, expected=3)]
    assert [(l["topic"], l["partition"], l["offset"]) for l in letters] == [(source, 0, o) for o in range(3)]
    assert "not JSON" in letters[0]["reason"]
    assert "tombstone" in letters[1]["reason"] and letters[1]["value_base64"] is None
    assert "event_id" in letters[2]["reason"]
    assert [m.value() for m in consume_all(kafka_bootstrap, output, expected=1)] == [good]
