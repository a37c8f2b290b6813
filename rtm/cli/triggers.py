"""`rtm triggers tail`: read what the campaign job emitted."""

import sys

import click

from rtm import kafka_broker, kafka_clients, settings
from rtm.cli.options import bootstrap_option


@click.group()
def triggers():
    """Read the triggers the campaign job writes to Kafka."""


@triggers.command()
@click.option("--from-beginning", is_flag=True, help="Start at the oldest trigger instead of new ones only.")
@click.option("--max", "max_records", type=int, help="Stop after this many triggers.")
@click.option("--timeout", type=float, help="Stop after this many seconds without a new trigger.")
@click.option("--topic", default=settings.TRIGGERS_TOPIC, show_default=True)
@bootstrap_option
def tail(from_beginning, max_records, timeout, topic, bootstrap):
    """Print triggers as JSONL (committed ones only: exactly-once runs show after a checkpoint)."""
    bootstrap = kafka_broker.resolve_bootstrap(bootstrap)
    messages = kafka_clients.read(
        bootstrap, topic, from_beginning=from_beginning, max_records=max_records, timeout_s=timeout
    )
    for message in messages:
        sys.stdout.write(message.value().decode(errors="replace") + "\n")
        sys.stdout.flush()
