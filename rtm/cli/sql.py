"""`rtm sql ...`: the Flink SQL aggregations of sql/, rendered and run."""

from pathlib import Path

import click

from rtm import kafka_broker, sql as rtm_sql
from rtm.cli.options import bootstrap_option
from rtm.errors import RtmError


def _overrides(ctx, param, pairs) -> dict[str, str]:
    overrides = {}
    for pair in pairs:
        name, equals, value = pair.partition("=")
        if not equals:
            raise click.BadParameter(f"{pair!r} is not NAME=VALUE, e.g. trigger_window=5m")
        overrides[name.strip()] = value
    return overrides


_FILE = click.argument("file", type=click.Path(dir_okay=False, path_type=Path))

_SET = click.option(
    "--set",
    "overrides",
    multiple=True,
    metavar="NAME=VALUE",
    callback=_overrides,
    help="Override a template variable (repeatable). Defaults: "
    + ", ".join(f"{name}={value!r}" for name, value in rtm_sql.DEFAULTS.items()),
)


@click.group()
def sql():
    """Flink SQL aggregations over the rtm topics (the files in sql/).

    Each file is a Jinja2 template: the broker, topic names and window sizes are
    filled in from rtm's settings, overridable with --set NAME=VALUE.
    """


@sql.command()
@_FILE
@bootstrap_option
@click.option(
    "--jobmanager",
    metavar="HOST:PORT",
    help="Submit to the Flink cluster whose REST API answers here (default: a local MiniCluster).",
)
@click.option("--bounded", is_flag=True, help="Read the topics up to their current end, print the result and exit.")
@_SET
def run(file, bootstrap, jobmanager, bounded, overrides):
    """Run FILE and print its result rows as they come, tab-separated under a header.

    Reads from --bootstrap, else from the broker `rtm kafka start` left running (one
    is started if none is).

    Unbounded (the default) it keeps running: each window's rows appear once the
    watermark passes the window's end. Stop it with Ctrl-C.
    """
    values = rtm_sql.variables(kafka_broker.resolve_bootstrap(bootstrap), bounded, overrides)
    result = rtm_sql.run(rtm_sql.render(file, values), jobmanager, job_name=f"rtm-sql {file.stem}")
    click.echo("\t".join(["op", *result.get_resolved_schema().get_column_names()]))
    try:
        for row in rtm_sql.rows(result):
            click.echo("\t".join("NULL" if value is None else str(value) for value in row.values()))
    except KeyboardInterrupt:
        # A cluster would keep running the job after this process is gone.
        job = result.get_job_client()
        if job is not None:
            job.cancel().result()
        raise RtmError("interrupted: the job was cancelled") from None


@sql.command()
@_FILE
@bootstrap_option
@click.option("--bounded", is_flag=True, help="Render the tables bounded (read up to the current end, then finish).")
@_SET
def render(file, bootstrap, bounded, overrides):
    """Print FILE rendered, ready for the Flink SQL client (`sql-client.sh -f`).

    The tables point at --bootstrap, else at the broker `rtm kafka start` left running.
    """
    broker = kafka_broker.running()
    if not bootstrap and not broker:
        raise RtmError("no rtm Kafka broker is running: give the brokers with --bootstrap HOST:PORT")
    values = rtm_sql.variables(bootstrap or broker.bootstrap, bounded, overrides)
    click.echo(rtm_sql.render(file, values), nl=False)
