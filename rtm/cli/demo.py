"""`rtm demo`: the end of `make demo`, on the embedded Kafka and a MiniCluster."""

import json
import time

import click
from confluent_kafka import Consumer, Producer, TopicPartition
from rich.console import Console
from rich.table import Table

from rtm import generator, kafka_broker, settings, topics

BAD_RECORDS = (b"not json at all", b'{"type": "page_view"}')


@click.command()
@click.option("--bootstrap", help="Kafka bootstrap HOST:PORT (default: the embedded broker, started if needed).")
@click.option("--users", default=50, show_default=True, help="How many synthetic users to play.")
def demo(bootstrap, users):
    """Play generated events through the keyed events job and print what comes out.

    Starts the embedded Kafka broker if none is running, writes the events (and two
    bad records) to rtm.events, runs the job on a MiniCluster over what is there,
    then reads the output topic and the dead-letter queue.
    """
    from jobs import events_by_user
    from jobs.environment import local_environment

    console = Console()
    bootstrap = kafka_broker.resolve_bootstrap(bootstrap)
    run = int(time.time())
    source, output, dlq = f"demo-{run}.events", f"demo-{run}.by-user", f"demo-{run}.dlq"
    topics.ensure_topics(bootstrap, [source, output, dlq])
    console.print(f"Kafka at [bold]{bootstrap}[/]; topics {source}, {output}, {dlq}")

    events = list(generator.generate(users))
    producer = Producer({"bootstrap.servers": bootstrap})
    for event in events:
        key = event.get("user_id") or event["anonymous_id"]
        producer.produce(source, key=key.encode(), value=json.dumps(event).encode())
    for bad in BAD_RECORDS:
        producer.produce(source, value=bad)
    producer.flush(30)
    console.print(f"wrote {len(events)} events of {users} users and {len(BAD_RECORDS)} bad records")

    started = time.monotonic()
    events_by_user.run(
        local_environment(), bootstrap, source_topic=source, output_topic=output, dlq_topic=dlq, bounded=True
    )
    console.print(f"the Flink job finished in {time.monotonic() - started:.1f} s")

    out = _read(bootstrap, output, len(events))
    table = Table(title=f"{output}: one record per event, keyed by user key (first 15)")
    for column in ("key", "event", "type", "ts"):
        table.add_column(column)
    for key, value in out[:15]:
        event = json.loads(value)
        table.add_row(key, event["event_id"], event["type"], str(event["ts"]))
    console.print(table)
    console.print(f"{len(out)} records for {len({k for k, _ in out})} user keys")
    for _, value in _read(bootstrap, dlq, len(BAD_RECORDS)):
        console.print(f"[yellow]dead letter[/]: {json.loads(value)['reason']}")


def _read(bootstrap: str, topic: str, count: int, timeout_s: float = 30) -> list[tuple[str, bytes]]:
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "rtm-demo", "enable.auto.commit": False})
    consumer.assign([TopicPartition(topic, 0, 0)])
    records, deadline = [], time.monotonic() + timeout_s
    while len(records) < count and time.monotonic() < deadline:
        for message in consumer.consume(1000, timeout=0.5):
            key = message.key()
            records.append((key.decode() if key else "", message.value()))
    consumer.close()
    return records
