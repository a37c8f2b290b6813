"""`rtm serve`: the decisions API: pending pop-ups per user, fetched or streamed."""

from pathlib import Path

import click

from rtm import decisions, http_server, kafka_broker, settings, topics
from rtm.cli.options import bootstrap_option
from rtm.durations import InvalidDuration, parse_duration


def _ttls(ctx: click.Context, param: click.Parameter, values: tuple[str, ...]) -> dict[str, int]:
    ttl_ms = {channel: seconds * 1000 for channel, seconds in decisions.DEFAULT_TTL_S.items()}
    for value in values:
        channel, sep, duration = value.partition("=")
        if not sep:
            raise click.BadParameter(f"{value!r}: write CHANNEL=DURATION, e.g. popup=30m")
        try:
            ttl_ms[channel] = parse_duration(duration)
        except InvalidDuration as err:
            raise click.BadParameter(str(err)) from None
    return ttl_ms


@click.command()
@bootstrap_option
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on (0.0.0.0: every interface).")
@click.option("--port", type=click.IntRange(0, 65535), default=8071, show_default=True, help="0 picks a free port.")
@click.option("--topic", default=settings.TRIGGERS_TOPIC, show_default=True, help="Where the triggers are.")
@click.option("--channel", "channels", multiple=True, default=decisions.PULL_CHANNELS, show_default=True,
              help="A pull channel to keep and serve (repeat the option).")
@click.option("--ttl", "ttl_ms", multiple=True, callback=_ttls, metavar="CHANNEL=DURATION",
              help=f"Older messages (by emitted_at) are not served [default: "
                   f"{', '.join(f'{c}={s // 60}m' for c, s in decisions.DEFAULT_TTL_S.items())}].")
@click.option("--store", type=click.Path(dir_okay=False, path_type=Path),
              help="SQLite file of the messages and the offsets read (default: RTM_HOME/decisions.sqlite).")
@click.option("--feed/--no-feed", default=False, show_default=True,
              help="Also stream every trigger read at GET /v1/triggers/stream (for demos: it shows all users).")
@click.option("--cors-origin", "cors_origins", multiple=True, default=("*",), show_default=True,
              help="Origins whose pages may call the API (repeat the option); '' turns CORS off.")
def serve(bootstrap, host, port, topic, channels, ttl_ms, store, feed, cors_origins):
    """Serve the pending triggers of pull channels (pop-ups) to pages and apps.

    Reads the triggers topic (read_committed) into a SQLite store that survives a
    restart. GET /v1/users/KEY/messages?channel=popup returns a user's pending
    messages, GET /v1/users/KEY/stream pushes them as Server-Sent Events the moment
    they arrive, POST /v1/messages/TRIGGER_ID/shown acknowledges one. A message is
    handed out once; holdout triggers are never served, nor are messages past their
    channel's TTL. One instance per store file. GET /healthz, GET /metrics.
    """
    from rtm.decisions_app import DecisionsApp

    missing = [c for c in channels if c not in ttl_ms]
    if missing:
        raise click.BadParameter(f"no TTL for {', '.join(missing)}: add --ttl {missing[0]}=DURATION",
                                 param_hint="--ttl")
    store = store or settings.RTM_HOME / "decisions.sqlite"
    decisions.MessageStore(store).close()  # an unusable file fails here, with what to do
    bootstrap = kafka_broker.resolve_bootstrap(bootstrap)
    topics.ensure_topics(bootstrap, [topic])
    app = DecisionsApp(bootstrap, topic, store, tuple(channels), ttl_ms, feed,
                       tuple(origin for origin in cors_origins if origin))
    click.echo(f"serving {', '.join(channels)} triggers of {topic} at {bootstrap} (store {store})", err=True)
    http_server.run(app.asgi(), host, port, "rtm serve")
