"""Options that several commands share, defined once."""

import click

from rtm.events import InvalidEvent, parse_ts

bootstrap_option = click.option(
    "--bootstrap", metavar="HOST:PORT",
    help="Kafka bootstrap servers (default: the broker `rtm kafka start` left running, or a new one).",
)


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
