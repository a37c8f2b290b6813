"""`rtm deliver`: send the triggers of one channel from Kafka, once each."""

import logging
import signal
import threading
from pathlib import Path

import click

from rtm import allowed_hosts, delivery, kafka_broker, settings, topics
from rtm.cli.options import bootstrap_option


@click.command()
@click.option("--channel", type=click.Choice(delivery.CHANNELS), required=True,
              help="Deliver the triggers of this channel; the others are left to their own deliverer.")
@bootstrap_option
@click.option("--group-id", help="Kafka consumer group (default: rtm-deliver-CHANNEL). "
              "Deliverers of one group share the work and must share the --store file.")
@click.option("--store", type=click.Path(dir_okay=False, path_type=Path),
              help="SQLite file of the trigger ids already sent (default: RTM_HOME/delivery/CHANNEL.sqlite).")
@click.option("--max-retries", type=click.IntRange(min=0), default=5, show_default=True,
              help="Retries of a send that failed with a 5xx, a connection error or a timeout.")
@click.option("--backoff", type=click.FloatRange(min=0), default=0.5, show_default=True,
              help="Seconds before the first retry; doubled for each next one, up to 30 s.")
@click.option("--timeout", type=click.FloatRange(min=0, min_open=True), default=10.0, show_default=True,
              help="Seconds to connect, and to wait for the answer, per request.")
@click.option("--topic", default=settings.TRIGGERS_TOPIC, show_default=True, help="Where the triggers are.")
@click.option("--dlq-topic", default=settings.DLQ_TOPIC, show_default=True,
              help="Where what cannot be delivered goes, with the reason.")
@click.option("--max-records", type=click.IntRange(min=1), help="Stop after handling this many records.")
@click.option("--idle-timeout", type=click.FloatRange(min=0, min_open=True),
              help="Stop after this many seconds without a record.")
@click.option("--allow-host", "allow_hosts", multiple=True, envvar=allowed_hosts.ENV_VAR, metavar="HOST",
              help="A host webhooks may call (repeatable; the env var takes them space-separated): a name "
              "(hooks.example.com), a domain (*.example.com) or an address or network (10.0.0.0/8). Loopback, "
              "private and link-local addresses are refused unless listed as addresses. Default: none.")
def deliver(channel, bootstrap, group_id, store, max_retries, backoff, timeout, topic, dlq_topic,
            max_records, idle_timeout, allow_hosts):
    """Send the triggers of one channel: webhook (POST the trigger's JSON to its
    endpoint) or console (print it), each trigger id once, across restarts.

    Webhooks go only to the hosts of --allow-host. Holdout triggers are never sent. Failures that retrying cannot fix (a 4xx, retries
    used up, a record that is not a trigger) go to the dead-letter topic. An offset is
    committed once its record is handled. Runs until SIGINT/SIGTERM, --max-records or
    --idle-timeout.
    """
    hosts = allowed_hosts.HostPolicy.parse(allow_hosts)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    bootstrap = kafka_broker.resolve_bootstrap(bootstrap)
    topics.ensure_topics(bootstrap, [topic, dlq_topic])
    group_id = group_id or f"rtm-deliver-{channel}"
    store = store or settings.RTM_HOME / "delivery" / f"{channel}.sqlite"
    click.echo(f"delivering {channel} triggers of {topic} at {bootstrap} (group {group_id}, store {store})", err=True)

    stop = threading.Event()
    previous = {sig: signal.signal(sig, lambda *_: stop.set()) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        counts = delivery.run(
            bootstrap, channel, store_path=store, group_id=group_id, topic=topic, dlq_topic=dlq_topic,
            retry=delivery.RetryPolicy(max_retries=max_retries, backoff_s=backoff), timeout_s=timeout,
            max_records=max_records, idle_timeout_s=idle_timeout, stop=stop, hosts=hosts,
        )
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    click.echo(", ".join(f"{outcome.value}: {counts[outcome]}" for outcome in delivery.Outcome), err=True)
