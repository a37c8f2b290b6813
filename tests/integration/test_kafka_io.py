"""jobs.kafka_io through a real Flink job: keys, tombstones and record metadata survive."""

import json

import pytest

from jobs.environment import local_environment
from jobs.kafka_io import EXACTLY_ONCE, RECORD_OUT, KafkaIO, record_out
from kafka_helpers import consume_all, produce


def _describe(record):
    # Everything the job saw of one record, as JSON, keyed like the input.
    seen = {
        "key": record.key,
        "value": None if record.value is None else list(record.value),
        "topic": record.topic,
        "partition": record.partition,
        "offset": record.offset,
    }
    return record_out(record.key, json.dumps(seen).encode())


@pytest.mark.parametrize("mode", ["thread", "process"])
def test_keys_tombstones_and_metadata_reach_the_job_intact(kafka_bootstrap, new_topic, mode):
    source, sink = new_topic("in", partitions=2), new_topic("out")
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
    env = local_environment({"python.execution-mode": mode})
    kafka = KafkaIO(env, kafka_bootstrap, group_id=f"io-{mode}", bounded=True)
    kafka.sink(sink, kafka.source(source).map(_describe, output_type=RECORD_OUT))
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


def test_sink_writes_chosen_keys_and_tombstones_exactly_once(kafka_bootstrap, new_topic):
    source, sink = new_topic("in"), new_topic("out")
    produce(kafka_bootstrap, source, [(b"a", b"keep"), (b"b", b"delete")])
    env = local_environment({"execution.checkpointing.interval": "1 s"})
    kafka = KafkaIO(env, kafka_bootstrap, group_id="io-eo", bounded=True, delivery=EXACTLY_ONCE)
    rekeyed = kafka.source(source).map(
        lambda r: record_out(f"re-{r.key}", None if r.value == b"delete" else r.value), output_type=RECORD_OUT
    )
    kafka.sink(sink, rekeyed)
    kafka.execute("kafka-io-exactly-once-test")

    # A read_committed consumer sees the records only once the transaction committed.
    written = {m.key(): m.value() for m in consume_all(kafka_bootstrap, sink, expected=2)}
    assert written == {b"re-a": b"keep", b"re-b": None}
