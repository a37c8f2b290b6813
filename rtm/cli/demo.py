"""`rtm demo`: the end of `make demo`, on the embedded Kafka and a MiniCluster."""

import json
import time

import click
from rich.console import Console
from rich.table import Table

from rtm import generator, kafka_broker, kafka_clients, topics

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
    records = [(e.get("user_id") or e["anonymous_id"], json.dumps(e).encode()) for e in events]
    kafka_clients.write(bootstrap, source, [*records, *((None, bad) for bad in BAD_RECORDS)])
    console.print(f"wrote {len(events)} events of {users} users and {len(BAD_RECORDS)} bad records")

    started = time.monotonic()
    events_by_user.run(
        local_environment(), bootstrap, source_topic=source, output_topic=output, dlq_topic=dlq, bounded=True
    )
    console.print(f"the Flink job finished in {time.monotonic() - started:.1f} s")

    out = _read(bootstrap, output)
    table = Table(title=f"{output}: one record per event, keyed by user key (first 15)")
    for column in ("key", "event", "type", "ts"):
        table.add_column(column)
    for key, value in out[:15]:
        event = json.loads(value)
        table.add_row(key, event["event_id"], event["type"], str(event["ts"]))
    console.print(table)
    console.print(f"{len(out)} records for {len({k for k, _ in out})} user keys")
    for _, value in _read(bootstrap, dlq):
        console.print(f"[yellow]dead letter[/]: {json.loads(value)['reason']}")


def _read(bootstrap: str, topic: str) -> list[tuple[str, bytes]]:
    return [
        (message.key().decode() if message.key() else "", message.value())
        for message in kafka_clients.read(bootstrap, topic, from_beginning=True, to_end=True)
    ]
