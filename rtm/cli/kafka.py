"""`rtm kafka ...`: the embedded Apache Kafka broker for development and tests."""

import sys

import click

from rtm import kafka_broker, topics


def _sasl_users(ctx, param, values: tuple[str, ...]) -> dict[str, str]:
    users = {}
    for value in values:
        name, _, password = value.partition(":")
        if not name or not password or '"' in value:
            raise click.BadParameter(f"{value!r} is not NAME:PASSWORD (no double quotes)")
        users[name] = password
    return users


@click.group()
def kafka():
    """Run a local single-node Apache Kafka broker (KRaft, loopback)."""


@kafka.command()
@click.option("--port", type=int, help="Port on 127.0.0.1 for clients (default: a free one).")
@click.option(
    "--data-dir",
    type=click.Path(file_okay=False),
    help="Where the broker keeps its log; formatted on first start, kept on stop "
    "(default: a temporary dir, removed on stop).",
)
@click.option("--sasl-user", "sasl_users", multiple=True, metavar="NAME:PASSWORD", callback=_sasl_users,
              help="Also listen for SASL/PLAIN logins (SASL_PLAINTEXT) of this user (repeatable), to try "
              "--kafka-config against.")
def start(port, data_dir, sasl_users):
    """Start the broker in the background, create the rtm topics, print its address.

    Returns once the broker answers a metadata request. If a broker started by rtm
    is already running, prints its address instead.
    """
    broker = kafka_broker.start(port=port, data_dir=data_dir, sasl_users=sasl_users)
    topics.ensure_topics(broker.bootstrap)
    click.echo(f"bootstrap: {broker.bootstrap}")
    if broker.sasl_bootstrap:
        click.echo(f"sasl bootstrap: {broker.sasl_bootstrap} (SASL_PLAINTEXT, PLAIN)")


@kafka.command()
def status():
    """Print the running broker's address (exit 0), or say none runs (exit 1)."""
    broker = kafka_broker.running()
    if broker and kafka_broker.answers(broker.bootstrap):
        click.echo(f"bootstrap: {broker.bootstrap}")
        return
    click.echo("no rtm Kafka broker is running: start one with `rtm kafka start`", err=True)
    sys.exit(1)


@kafka.command()
def stop():
    """Stop the broker started by `rtm kafka start` (its temporary data goes too)."""
    broker = kafka_broker.stop()
    click.echo(f"stopped broker at {broker.bootstrap}" if broker else "no rtm Kafka broker was running")
