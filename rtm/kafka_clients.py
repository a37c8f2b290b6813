"""Plain Kafka clients for the commands: write records, read a topic, fold a compacted one."""

import time
from collections.abc import Iterable, Iterator

from confluent_kafka import OFFSET_BEGINNING, OFFSET_END, Consumer, KafkaException, Producer, TopicPartition

from rtm import kafka_config
from rtm.errors import RtmError


def new_producer(bootstrap: str, **config) -> Producer:
    """A producer that keeps order and writes each record once, even when it retries;
    `config` adds or changes librdkafka settings (dots as underscores: linger_ms=5)."""
    settings = {"bootstrap.servers": bootstrap, "enable.idempotence": True, "linger.ms": 5}
    settings.update({key.replace("_", "."): value for key, value in config.items()})
    return Producer(kafka_config.librdkafka(settings))


def write(bootstrap: str, topic: str, records: Iterable[tuple[str | None, bytes | None]]) -> int:
    """Write (key, value) records in order (value None: a tombstone); all acknowledged."""
    failures = []

    def delivered(err, message):
        if err is not None:
            failures.append(f"record with key {message.key()!r}: {err.str()}")

    producer = new_producer(bootstrap)
    try:
        count = 0
        for key, value in records:
            while True:
                try:
                    producer.produce(topic, key=None if key is None else key.encode(), value=value,
                                     on_delivery=delivered)
                    break
                except BufferError:  # the local queue is full: wait for deliveries, then retry
                    producer.poll(0.1)
            producer.poll(0)
            count += 1
        deadline = time.monotonic() + 30
        while len(producer) and time.monotonic() < deadline:  # poll, not flush: a refused login raises at once
            producer.poll(0.1)
        if len(producer) or failures:
            raise RtmError(f"writing to {topic} at {bootstrap} failed: {failures[:3] or 'not acknowledged in 30 s'}")
        return count
    finally:
        # Shut down now: the error's traceback holds this frame, so after a failure the producer
        # would live on (in a test run, to the interpreter's exit), reconnecting and logging.
        producer.purge()  # what was not acknowledged is given up, so close() has nothing to wait for
        producer.close()


def _partitions(consumer: Consumer, topic: str) -> list[int]:
    try:
        metadata = consumer.list_topics(topic, timeout=10).topics[topic]
    except KafkaException as err:
        consumer.poll(0)  # a refused login raises here, saying so (kafka_config's error_cb)
        raise RtmError(f"cannot reach Kafka to read {topic}: {err}") from err
    if metadata.error is not None:
        raise RtmError(f"cannot read topic {topic}: {metadata.error.str()}")
    return sorted(metadata.partitions)


def read(bootstrap: str, topic: str, *, from_beginning: bool, to_end: bool = False,
         max_records: int | None = None, timeout_s: float | None = None, stop_at: float | None = None) -> Iterator:
    """Messages of `topic` (all partitions, no consumer group join, committed records only).

    Stops after `max_records`, after `timeout_s` without a new record, at `stop_at`
    (time.monotonic()), or, with `to_end`, at the end offsets the topic had when
    reading began.
    """
    consumer = Consumer(kafka_config.librdkafka({"bootstrap.servers": bootstrap, "group.id": "rtm-cli",
                                                 "enable.auto.commit": False, "isolation.level": "read_committed"}))
    try:
        partitions = _partitions(consumer, topic)
        start = OFFSET_BEGINNING if from_beginning else OFFSET_END
        consumer.assign([TopicPartition(topic, p, start) for p in partitions])
        ends = {p: consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1] for p in partitions}
        remaining = {p for p, end in ends.items() if end > 0} if to_end else None
        count, quiet_since = 0, time.monotonic()
        while remaining is None or remaining:
            message = consumer.poll(0.2)
            if stop_at is not None and time.monotonic() > stop_at:
                return
            if message is None:
                if timeout_s is not None and time.monotonic() - quiet_since > timeout_s:
                    return
                continue
            if message.error() is not None:
                raise RtmError(f"reading {topic}: {message.error().str()}")
            quiet_since = time.monotonic()
            yield message
            count += 1
            if max_records is not None and count >= max_records:
                return
            if remaining is not None and message.offset() + 1 >= ends[message.partition()]:
                remaining.discard(message.partition())
    finally:
        consumer.close()


def latest_by_key(bootstrap: str, topic: str) -> dict[str, bytes]:
    """A compacted topic folded to its current values: key -> value, tombstoned keys gone."""
    current: dict[str, bytes] = {}
    for message in read(bootstrap, topic, from_beginning=True, to_end=True):
        key = message.key().decode()
        if message.value() is None:
            current.pop(key, None)
        else:
            current[key] = message.value()
    return current
