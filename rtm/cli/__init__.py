"""The `rtm` command line: one group per concept, each in its own module.

Commands are imported when they are run, not all at start-up: `rtm campaigns preview`
should not pay for the HTTP servers' or Flink's imports.
"""

import importlib
import sys

import click

from rtm.errors import RtmError

# Command name -> "module:attribute" of its click command.
_COMMANDS = {
    "backtest": "rtm.cli.run:backtest",
    "campaigns": "rtm.cli.campaigns:campaigns",
    "cluster": "rtm.cli.cluster:cluster",
    "collect": "rtm.cli.collect:collect",
    "compile": "rtm.cli.compile:compile",
    "deliver": "rtm.cli.deliver:deliver",
    "demo": "rtm.cli.demo:demo",
    "events": "rtm.cli.events:events",
    "jobs": "rtm.cli.jobs:jobs",
    "kafka": "rtm.cli.kafka:kafka",
    "run": "rtm.cli.run:run",
    "serve": "rtm.cli.serve:serve",
    "shop": "rtm.cli.shop:shop",
    "sql": "rtm.cli.sql:sql",
    "submit": "rtm.cli.jobs:submit",
    "triggers": "rtm.cli.triggers:triggers",
}


class _Main(click.Group):
    def list_commands(self, ctx):
        return sorted(_COMMANDS)

    def get_command(self, ctx, name):
        if name not in _COMMANDS:
            return None
        module, attribute = _COMMANDS[name].split(":")
        return getattr(importlib.import_module(module), attribute)

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except RtmError as err:
            click.secho(f"error: {err}", fg="red", err=True)
            sys.exit(2)


@click.group(cls=_Main)
@click.version_option(package_name="rtm")
def main():
    """rtm: realtime marketing on Apache Flink.

    Campaigns are YAML files; events arrive on Kafka; every match leaves as a
    trigger on Kafka. Run `rtm COMMAND --help` for each command.
    """
