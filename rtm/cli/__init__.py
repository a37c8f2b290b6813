"""The `rtm` command line: one group per concept, each in its own module."""

import sys

import click

from rtm.errors import RtmError
from rtm.cli.campaigns import campaigns
from rtm.cli.cluster import cluster
from rtm.cli.collect import collect
from rtm.cli.demo import demo
from rtm.cli.deliver import deliver
from rtm.cli.events import events
from rtm.cli.jobs import jobs, submit
from rtm.cli.kafka import kafka
from rtm.cli.run import backtest, run
from rtm.cli.serve import serve
from rtm.cli.shop import shop
from rtm.cli.sql import sql
from rtm.cli.triggers import triggers


class _Main(click.Group):
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


main.add_command(kafka)
main.add_command(triggers)
main.add_command(campaigns)
main.add_command(demo)
main.add_command(sql)
main.add_command(deliver)
main.add_command(events)
main.add_command(run)
main.add_command(backtest)
main.add_command(cluster)
main.add_command(submit)
main.add_command(jobs)
main.add_command(collect)
main.add_command(serve)
main.add_command(shop)
