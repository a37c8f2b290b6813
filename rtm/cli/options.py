"""Options that several commands share, defined once."""

import dataclasses
import functools

from pathlib import Path

import click

from rtm import kafka_config
from rtm.durations import InvalidDuration, parse_duration
from rtm.engine import DEFAULT_CONFIG, EngineConfig
from rtm.errors import RtmError
from rtm.events import InvalidEvent, parse_ts

def _use_kafka_config(ctx: click.Context, param: click.Parameter, value: Path | None) -> None:
    try:
        kafka_config.use(value)
    except RtmError as err:
        raise click.BadParameter(str(err)) from None


_kafka_config_option = click.option(
    "--kafka-config", type=click.Path(exists=True, dir_okay=False, path_type=Path), expose_value=False,
    is_eager=True, callback=_use_kafka_config,
    help=f"Kafka client settings (Kafka's client.properties: security.protocol, sasl.*, ssl.*, bootstrap.servers) "
    f"for every Kafka client of this command and of the job [default: ${kafka_config.ENV_VAR}].",
)
_bootstrap_option = click.option(
    "--bootstrap", metavar="HOST:PORT",
    help="Kafka bootstrap servers (default: bootstrap.servers of --kafka-config, else the broker `rtm kafka start` "
    "left running, or a new one).",
)


def bootstrap_option(command):
    """--bootstrap and --kafka-config: where Kafka is, and how to talk to it."""
    return _bootstrap_option(_kafka_config_option(command))


def _parse_until(ctx: click.Context, param: click.Parameter, value: str | None) -> int | None:
    if value is None:
        return None
    try:
        return parse_ts(int(value) if value.isdigit() else value)
    except InvalidEvent as err:
        raise click.BadParameter(str(err)) from None


until_option = click.option(
    "--until", callback=_parse_until,
    help="Event time stops here (ISO-8601 or epoch millis); default: the largest event time in the input.",
)


def duration(ctx: click.Context, param: click.Parameter, value: str | None) -> int | None:
    if value is None:
        return None
    try:
        return parse_duration(value)
    except InvalidDuration as err:
        raise click.BadParameter(str(err)) from None


max_future_option = click.option(
    "--max-future", "max_future", callback=duration, default="1h", show_default=True,
    help="An event whose ts is further ahead than this of its Kafka record's timestamp (over files: of the largest "
    "event time before it) goes to rtm.dlq: a wrong clock must not move time for everyone.",
)


# Engine settings a user may change, as (option, EngineConfig field, help).
_ENGINE_OPTIONS = (
    ("--session-gap", "session_gap_ms", "A session closes after this much event time without an event."),
    ("--dedup-horizon", "dedup_horizon_ms", "An event id seen within this much event time is a duplicate."),
    ("--allowed-lateness", "allowed_lateness_ms", "Events older than the user's latest by more go to rtm.late."),
    ("--idle-expiry", "idle_expiry_ms", "A user quiet this long is forgotten (state is freed)."),
)


def engine_config(params: dict) -> EngineConfig:
    """The EngineConfig of a command's parsed `engine_options` (its params by name)."""
    changes = {field: params[field] for _, field, _ in _ENGINE_OPTIONS if params[field] is not None}
    return dataclasses.replace(DEFAULT_CONFIG, **changes)


def engine_options(command):
    """Add the engine's time settings (durations such as 30m, 1h, 7d) and pass them to the
    command as one `engine_config: EngineConfig` argument."""

    @functools.wraps(command)
    def with_config(*args, **kwargs):
        config = engine_config(kwargs)
        for _, field, _ in _ENGINE_OPTIONS:
            del kwargs[field]
        return command(*args, engine_config=config, **kwargs)

    for option, field, text in reversed(_ENGINE_OPTIONS):
        default = getattr(DEFAULT_CONFIG, field)
        with_config = click.option(option, field, callback=duration, help=f"{text} [default: {default // 1000}s]")(
            with_config
        )
    return with_config
