"""jobs.kafka_io through a real Flink job: keys, tombstones, record metadata, event time
and dead letters, read and written in the JVM (rtm-flink.jar)."""

import base64
import json

import pytest
from pyflink.datastream import ProcessFunction
from pyflink.java_gateway import get_gateway

from jobs import kafka_io
from jobs.environment import local_environment
from jobs.kafka_io import EXACTLY_ONCE, KafkaIO
from kafka_helpers import consume_all, produce
from rtm.dlq import dead_letter
from rtm.events import InvalidEvent, parse_event, parse_ts
from rtm.time_rules import too_far_ahead
from udfs.rows import CAMPAIGN, DLQ, EVENT, read_input, routed_out

OUT = "out"


class _Describe(ProcessFunction):
    """Everything the job saw of one record, as JSON, keyed like the input."""

    def process_element(self, keyed, ctx):
        record = read_input(keyed[1])
        seen = {
            "user_key": keyed[0],
            "key": record.key,
            "value": None if record.value is None else list(record.value),
            "topic": record.topic,
            "partition": record.partition,
            "offset": record.offset,
            "event_time": ctx.timestamp(),
        }
        yield routed_out(OUT, record.key, json.dumps(seen).encode())


def _copy_job(kafka: KafkaIO, source_topic: str, kind: str, sink_topic: str, dlq_topic: str):
    read = kafka.read(kafka.kafka_source(source_topic, kind), kafka_io.watermarks(0, 1_000), "in", "in")
    split = kafka_io.split_inputs(read, "split", "split")
    seen = split.keyable.process(_Describe(), output_type=kafka_io.routed_type())
    kafka.sink(seen, {OUT: sink_topic}, "out", "out")
    kafka.sink(split.dead_letters, {DLQ: dlq_topic}, "dead letters", "dead-letters")


@pytest.mark.parametrize("mode", ["thread", "process"])
def test_keys_tombstones_and_metadata_reach_the_job_intact(kafka_bootstrap, new_topic, mode):
    source, sink, dlq = new_topic("in", partitions=2), new_topic("out"), new_topic("dlq")
    produce(
        kafka_bootstrap,
        source,
        [
            (b"user-1", b'{"n": 1}'),
            (b"user-2", None),  # a tombstone
            (None, b"\xff\xfe not utf-8"),  # no key, bytes that are not text
            (b"user-1", b'{"n": 2}'),
        ],
    )
    kafka = KafkaIO(local_environment({"python.execution-mode": mode}), kafka_bootstrap, group_id=f"io-{mode}",
                    bounded=True)
    _copy_job(kafka, source, CAMPAIGN, sink, dlq)
    kafka.execute("kafka-io-test")

    seen = [json.loads(m.value()) for m in consume_all(kafka_bootstrap, sink, expected=4)]
    by_position = {(s["partition"], s["offset"]): s for s in seen}
    assert len(by_position) == 4
    assert {s["topic"] for s in seen} == {source}
    values = sorted((s["key"] or "", None if s["value"] is None else bytes(s["value"])) for s in seen)
    assert values == sorted(
        [("user-1", b'{"n": 1}'), ("user-2", None), ("", b"\xff\xfe not utf-8"), ("user-1", b'{"n": 2}')]
    )
    # Offsets are per partition and dense from 0.
    for partition in {s["partition"] for s in seen}:
        offsets = sorted(o for p, o in by_position if p == partition)
        assert offsets == list(range(len(offsets)))
    # The message key is also the key by which campaign records travel.
    assert all(s["user_key"] == s["key"] for s in seen)


def test_events_are_keyed_by_the_payloads_user_key_and_timed_by_its_ts_and_the_rest_dead_lettered(
    kafka_bootstrap, new_topic
):
    source, sink, dlq = new_topic("in"), new_topic("out"), new_topic("dlq")
    keyed = [
        (b"k1", b'{"event_id": "a", "user_id": "u1", "anonymous_id": "d1", "ts": 1795600000000}'),
        (None, b'{"ts": "2026-11-25T13:45:00.5+01:00", "params": {"user_id": "no"}, "anonymous_id": "d2"}'),
        (None, b'{"user_id": "", "anonymous_id": "d3", "ts": "yesterday"}'),  # keyed; the engine refuses the ts
    ]
    unkeyable = [
        (b"k4", b"{not json"),
        (b"k5", b'{"event_id": "n", "ts": 1795600000000}'),
        (b"k6", b'["an", "array"]'),
        (b"k7", None),
        (None, b'{"user_id": 7}'),
        (None, b'{"user_id": "a", "ts": 1795600000000, "user_id": "b"}'),  # which user? refused
    ]
    produce(kafka_bootstrap, source, keyed + unkeyable)
    kafka = KafkaIO(local_environment(), kafka_bootstrap, group_id="io-events", bounded=True)
    _copy_job(kafka, source, EVENT, sink, dlq)
    kafka.execute("kafka-io-events-test")

    seen = sorted((json.loads(m.value()) for m in consume_all(kafka_bootstrap, sink, expected=3)),
                  key=lambda s: s["offset"])
    no_time = -(2**63)  # Long.MIN_VALUE: moves no watermark
    assert [(s["user_key"], s["event_time"]) for s in seen] == [
        ("u1", 1795600000000), ("d2", parse_ts("2026-11-25T13:45:00.5+01:00")), ("d3", no_time)]
    letters = sorted((json.loads(m.value()) for m in consume_all(kafka_bootstrap, dlq, expected=len(unkeyable))),
                     key=lambda letter: letter["offset"])
    assert [letter["offset"] for letter in letters] == list(range(3, 3 + len(unkeyable)))
    for letter, (key, value) in zip(letters, unkeyable):
        # The JVM writes the very dead letter that rtm.dlq writes, reason aside.
        expected = json.loads(dead_letter(letter["reason"], topic=source, partition=0, offset=letter["offset"],
                                          key=None if key is None else key.decode(), value=value))
        assert letter == expected
        assert value is None or base64.b64decode(letter["value_base64"]) == value
    reasons = [letter["reason"] for letter in letters]
    for reason, expected in zip(reasons, ["not JSON", "user_id", "JSON object", "tombstone", "user_id",
                                          "Duplicate field 'user_id'"]):
        assert expected in reason


def test_an_event_further_ahead_of_its_kafka_timestamp_than_max_future_is_refused_before_it_has_a_time(
    kafka_bootstrap, new_topic
):
    source, sink, dlq = new_topic("in"), new_topic("out"), new_topic("dlq")
    sent, max_future = 1795600000000, 3_600_000
    records = [  # (ts, Kafka timestamp): within the limit, at it, a millisecond past it, far past it, behind it
        (sent, sent), (sent + max_future, sent), (sent + max_future + 1, sent), (253402300799999, sent),
        (sent - 86_400_000, sent),
    ]
    produce(kafka_bootstrap, source, [(None, json.dumps({"event_id": f"e{n}", "user_id": "u", "ts": ts}).encode(),
                                       stamp) for n, (ts, stamp) in enumerate(records)])
    kafka = KafkaIO(local_environment(), kafka_bootstrap, group_id="io-future", bounded=True)
    read = kafka.read(kafka.kafka_source(source, EVENT, max_future_ms=max_future), kafka_io.watermarks(0, 1_000),
                      "in", "in")
    split = kafka_io.split_inputs(read, "split", "split")
    kafka.sink(split.keyable.process(_Describe(), output_type=kafka_io.routed_type()), {OUT: sink}, "out", "out")
    kafka.sink(split.dead_letters, {DLQ: dlq}, "dead letters", "dead-letters")
    kafka.execute("kafka-io-future-test")

    seen = [json.loads(m.value()) for m in consume_all(kafka_bootstrap, sink, expected=3)]
    assert sorted((s["offset"], s["event_time"]) for s in seen) == [(0, sent), (1, sent + max_future), (4, sent - 86_400_000)]
    letters = sorted((json.loads(m.value()) for m in consume_all(kafka_bootstrap, dlq, expected=2)),
                     key=lambda letter: letter["offset"])
    assert [letter["offset"] for letter in letters] == [2, 3]
    # The JVM words the refusal as the rule's Python home does (preview applies that one).
    assert [letter["reason"] for letter in letters] == [
        too_far_ahead(records[n][0], sent, max_future, "the record's Kafka timestamp") for n in (2, 3)]


# Every way an event can name its user; the last three name none.
_WHO = [
    {"user_id": "u", "anonymous_id": "a"}, {"anonymous_id": "a", "user_id": "u"}, {"user_id": "u"},
    {"user_id": "u", "anonymous_id": None}, {"user_id": "u", "anonymous_id": ""},
    {"user_id": None, "anonymous_id": "a"}, {"user_id": "", "anonymous_id": "a"}, {"anonymous_id": "a"},
    {"user_id": 'ü 用户 "quoted"'},
    {"user_id": "", "anonymous_id": ""}, {"user_id": None, "anonymous_id": None}, {},
]


def test_the_jvm_keys_every_event_by_the_user_key_the_engine_reads():
    """The engine takes the key the JVM keyed an event by as the event's own: io.rtm.flink.Inputs
    and rtm.events.user_key must never disagree."""
    local_environment()  # puts rtm-flink.jar on the gateway's class path
    inputs = get_gateway().jvm.io.rtm.flink.Inputs
    for who in _WHO:
        for ascii_only in (True, False):  # unicode escaped, and as UTF-8
            raw = json.dumps({"event_id": "e", "type": "page_view", "ts": 1795600000000, **who},
                             ensure_ascii=ascii_only).encode()
            try:
                engine_key = parse_event(raw).key
            except InvalidEvent:
                engine_key = None  # refused: no user key
            assert inputs.read(EVENT, False, None, raw, "in", 0, 0).getField(0) == engine_key, raw


def test_sink_writes_chosen_keys_and_tombstones_exactly_once(kafka_bootstrap, new_topic):
    source, sink = new_topic("in"), new_topic("out")
    produce(kafka_bootstrap, source, [(b"a", b"keep"), (b"b", b"delete")])
    env = local_environment({"execution.checkpointing.interval": "1 s"})
    kafka = KafkaIO(env, kafka_bootstrap, group_id="io-eo", bounded=True, delivery=EXACTLY_ONCE)
    read = kafka.read(kafka.kafka_source(source, CAMPAIGN), kafka_io.watermarks(0, 1_000), "in", "in")
    def rekey(keyed):
        record = read_input(keyed[1])
        return routed_out(OUT, f"re-{record.key}", None if record.value == b"delete" else record.value)

    rekeyed = kafka_io.split_inputs(read, "split", "split").keyable.map(rekey, output_type=kafka_io.routed_type())
    kafka.sink(rekeyed, {OUT: sink}, "out", "out")
    kafka.execute("kafka-io-exactly-once-test")

    # A read_committed consumer sees the records only once the transaction committed.
    written = {m.key(): m.value() for m in consume_all(kafka_bootstrap, sink, expected=2)}
    assert written == {b"re-a": b"keep", b"re-b": None}
