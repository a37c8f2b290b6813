"""`rtm cluster ...`: a local standalone Flink cluster, as separate JobManager and TaskManager processes."""

import sys

import click

from rtm import flink_cluster


@click.group()
def cluster():
    """Run a local standalone Flink cluster (loopback) from the scripts the apache-flink wheel ships.

    Configured by flink-conf/config.yaml; logs, checkpoints and savepoints go to
    RTM_HOME/flink (default .rtm/flink). Submit jobs with `rtm submit`, manage them
    with `rtm jobs`.
    """


@cluster.command()
@click.option("--port", type=int, help="REST port on 127.0.0.1 (default: rest.port of flink-conf/config.yaml).")
@click.option("--taskmanagers", type=click.IntRange(min=1), default=1, show_default=True,
              help="How many TaskManager processes, one slot each (flink-conf/config.yaml): in thread mode "
                   "a TaskManager's slots share one Python interpreter, so parallelism N needs N of them.")
def start(port, taskmanagers):
    """Start a JobManager and TaskManagers in the background, print the REST address.

    Returns once every TaskManager has registered. If a cluster started by rtm is
    already running, prints its address instead.
    """
    started = flink_cluster.start(rest_port=port, taskmanagers=taskmanagers)
    click.echo(f"rest: {started.rest}")


@cluster.command()
def status():
    """Print the running cluster's REST address and load (exit 0), or say none runs (exit 1)."""
    running = flink_cluster.running()
    if running is None:
        click.echo("no rtm Flink cluster is running: start one with `rtm cluster start`", err=True)
        sys.exit(1)
    overview = flink_cluster.overview(running)
    if overview is None:
        click.echo(f"the rtm Flink cluster at {running.rest} does not answer: see {flink_cluster.log_dir()}", err=True)
        sys.exit(1)
    click.echo(f"rest: {running.rest}")
    click.echo(
        f"taskmanagers: {overview['taskmanagers']}, slots free: {overview['slots-available']} of "
        f"{overview['slots-total']}, jobs running: {overview['jobs-running']}"
    )


@cluster.command()
def stop():
    """Stop the cluster started by `rtm cluster start` (its jobs end with it)."""
    stopped = flink_cluster.stop()
    click.echo(f"stopped cluster at {stopped.rest}" if stopped else "no rtm Flink cluster was running")
