"""Reading and writing test topics with confluent-kafka, directly (no group joins)."""

import time

from confluent_kafka import Consumer, Producer, TopicPartition


def produce(bootstrap: str, topic: str, records) -> None:
    """Write (key, value) or (key, value, kafka_timestamp_ms) records in order; waits
    until every one is acknowledged."""
    producer = Producer({"bootstrap.servers": bootstrap, "enable.idempotence": True})
    for key, value, *timestamp in records:
        producer.produce(topic, key=key, value=value, timestamp=timestamp[0] if timestamp else 0)
    assert producer.flush(30) == 0, "not every record was acknowledged within 30 s"


def consume_all(bootstrap: str, topic: str, expected: int, timeout_s: float = 60, partitions: int = 1):
    """Read `expected` records from the start of every partition (no group join)."""
    consumer = Consumer(
        {"bootstrap.servers": bootstrap, "group.id": "tests", "enable.auto.commit": False,
         "isolation.level": "read_committed"}
    )
    consumer.assign([TopicPartition(topic, p, 0) for p in range(partitions)])
    records = []
    deadline = time.monotonic() + timeout_s
    while len(records) < expected and time.monotonic() < deadline:
        message = consumer.poll(0.5)
        if message is None:
            continue
        assert message.error() is None, message.error()
        records.append(message)
    consumer.close()
    return records
