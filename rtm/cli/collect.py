"""`rtm collect`: the HTTP event collector in front of rtm.events."""

from pathlib import Path

import click

from rtm import http_server, kafka_broker, kafka_clients, settings, topics
from rtm.cli.options import bootstrap_option
from rtm.events import MAX_EVENT_BYTES


@click.command()
@bootstrap_option
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on (0.0.0.0: every interface).")
@click.option("--port", type=click.IntRange(0, 65535), default=8070, show_default=True, help="0 picks a free port.")
@click.option("--topic", default=settings.EVENTS_TOPIC, show_default=True, help="Where accepted events go.")
@click.option("--tokens", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="YAML file `source: token` (or a list of tokens per source); without it no token is asked.")
@click.option("--cors-origin", "cors_origins", multiple=True, default=("*",), show_default=True,
              help="Origins whose pages may post events (repeat the option); '' turns CORS off.")
@click.option("--max-body", type=click.IntRange(min=1024), default=4 * 1024 * 1024, show_default=True,
              help="Largest request body in bytes.")
@click.option("--max-batch", type=click.IntRange(min=1), default=500, show_default=True,
              help="Most events in one request.")
@click.option("--max-queued", type=click.IntRange(min=1), default=100_000, show_default=True,
              help="Events waiting for Kafka's acknowledgement at most; past it requests get 503 + Retry-After.")
@click.option("--linger-ms", type=click.IntRange(min=0), default=5, show_default=True,
              help="How long the producer gathers a batch: higher gives more events/s and adds latency to every 202.")
@click.option("--delivery-timeout", type=click.IntRange(min=1), default=10, show_default=True,
              help="Seconds for Kafka to acknowledge an event before the request fails with 503.")
def collect(bootstrap, host, port, topic, tokens, cors_origins, max_body, max_batch, max_queued, linger_ms,
            delivery_timeout):
    """Take events over HTTP and write them to Kafka.

    POST /v1/events with one JSON event, a JSON array of events, or NDJSON
    (Content-Type: application/x-ndjson). Each event is checked against the event
    contract with the same code as the job (at most 64 KiB each), stamped with
    context.received_at (epoch millis, the server's clock) and written keyed by its user
    key. The answer lists each event as accepted or rejected with the reason, and comes
    only once Kafka (acks=all) has acknowledged every accepted event. Retrying is safe:
    the job drops repeats of an event_id. GET /healthz, GET /metrics (Prometheus).
    """
    from rtm.collector import Limits, Publisher, Tokens
    from rtm.collector_app import CollectorApp

    bootstrap = kafka_broker.resolve_bootstrap(bootstrap)
    topics.ensure_topics(bootstrap, [topic])
    producer = kafka_clients.new_producer(
        bootstrap, acks="all", linger_ms=linger_ms, message_timeout_ms=delivery_timeout * 1000,
        # Headroom over --max-queued: the collector answers 503 before librdkafka refuses.
        queue_buffering_max_messages=max_queued + 10_000,
        message_max_bytes=max(1_000_000, 2 * MAX_EVENT_BYTES),
    )
    app = CollectorApp(
        Publisher(producer, topic, max_queued),
        Limits(max_body_bytes=max_body, max_batch=max_batch),
        Tokens.load(tokens) if tokens else None,
        tuple(origin for origin in cors_origins if origin),
    )
    click.echo(f"collecting events into {topic} at {bootstrap}", err=True)
    http_server.run(app.asgi(), host, port, "rtm collect")
