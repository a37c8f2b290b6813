"""`rtm events ...`: write events to Kafka, and make synthetic ones."""

import json
import sys
import time

import click
import msgspec

from rtm import generator, kafka_broker, kafka_clients, settings
from rtm.cli.options import bootstrap_option
from rtm.events import user_key



def _user_key(line: bytes) -> str | None:
    # Keyed by user key where the line parses; a bad line goes as it is, without a key.
    try:
        event = msgspec.json.decode(line)
    except msgspec.DecodeError:
        return None
    if not isinstance(event, dict):
        return None
    key = user_key(event.get("user_id"), event.get("anonymous_id"))
    return key if isinstance(key, str) else None


@click.group()
def events():
    """Write events to Kafka; generate synthetic traffic."""


@events.command()
@click.argument("file", type=click.File("rb"))
@click.option("--topic", default=settings.EVENTS_TOPIC, show_default=True)
@bootstrap_option
def produce(file, topic, bootstrap):
    """Write each line of FILE (JSONL; - for stdin) to the topic, exactly as it is.

    Lines that parse are keyed by their user key (user_id, else anonymous_id); bad
    lines are written too, without a key, so the job's dead-letter queue can be tried.
    """
    bootstrap = kafka_broker.resolve_bootstrap(bootstrap)
    lines = (line.rstrip(b"\r\n") for line in file if line.strip())
    count = kafka_clients.write(bootstrap, topic, ((_user_key(line), line) for line in lines))
    click.echo(f"wrote {count} records to {topic} at {bootstrap}", err=True)


@events.command()
@click.option("--users", default=100, show_default=True, help="Synthetic users (shop visits and game sessions).")
@click.option("--seed", default=7, show_default=True, help="The same seed gives the same events.")
@click.option("--rate", type=float, help="Events per second (wall time); default: as fast as possible.")
@click.option("--topic", help="Write to this Kafka topic instead of printing JSONL to stdout.")
@bootstrap_option
def generate(users, seed, rate, topic, bootstrap):
    """Make realistic synthetic traffic: print it as JSONL, or write it to a topic."""
    stream = generator.generate(users, seed=seed)
    if rate:
        stream = _paced(stream, rate)
    if topic:
        bootstrap = kafka_broker.resolve_bootstrap(bootstrap)
        records = ((user_key(e.get("user_id"), e.get("anonymous_id")), json.dumps(e).encode()) for e in stream)
        click.echo(f"wrote {kafka_clients.write(bootstrap, topic, records)} events to {topic}", err=True)
        return
    for event in stream:
        sys.stdout.write(json.dumps(event) + "\n")


def _paced(stream, rate: float):
    started = time.monotonic()
    for n, item in enumerate(stream):
        ahead = n / rate - (time.monotonic() - started)
        if ahead > 0:
            time.sleep(ahead)
        yield item
