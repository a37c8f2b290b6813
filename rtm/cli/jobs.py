"""`rtm submit` and `rtm jobs ...`: the campaign job on a Flink cluster, and its lifecycle."""

from datetime import datetime, timezone

import click

from rtm import flink_cluster
from rtm.cli.run import check_settings, run
from rtm.flink_rest import FlinkRest

jobmanager_option = click.option(
    "--jobmanager", metavar="HOST:PORT",
    help="The cluster's REST address (default: the cluster `rtm cluster start` left running).",
)


def _rest(jobmanager: str | None) -> FlinkRest:
    return FlinkRest(flink_cluster.resolve_jobmanager(jobmanager))


@click.command(context_settings={"ignore_unknown_options": True})
@jobmanager_option
@click.option("--from-savepoint", metavar="PATH",
              help="Resume from this savepoint (its keyed state and Kafka offsets).")
@click.argument("run_args", nargs=-1, type=click.UNPROCESSED, metavar="[RTM RUN OPTIONS]...")
def submit(jobmanager, from_savepoint, run_args):
    """Submit the campaign job to a Flink cluster, detached; print its JobID.

    Takes the options of `rtm run` (see `rtm run --help`), e.g.
    `rtm submit --bootstrap 127.0.0.1:9092 --campaigns campaigns`. Runs the wheel's
    `flink run -d -py jobs/entry.py -pyfs ... -pyexec ...` with the Kafka connector on
    the classpath; the job's Python code travels with it.
    """
    # Bad options and settings that contradict each other fail here, before a slow submission.
    check_settings(run.make_context("rtm run", list(run_args)).params)
    job_id = flink_cluster.submit(flink_cluster.resolve_jobmanager(jobmanager), list(run_args), from_savepoint)
    click.echo(f"job: {job_id}")


@click.group()
def jobs():
    """List, inspect, cancel and savepoint the jobs of a Flink cluster (REST API)."""


@jobs.command("list")
@jobmanager_option
def list_jobs(jobmanager):
    """List the jobs, one line each, oldest first: JobID, state, name."""
    for job in _rest(jobmanager).jobs():
        click.echo(f"{job['jid']}  {job['state']:<10} {job['name']}")


@jobs.command()
@jobmanager_option
@click.argument("job_id")
def status(jobmanager, job_id):
    """The job's state, its operators' states, the TaskManagers running it, its latest
    checkpoint and its latest failure, if any."""
    job = _rest(jobmanager).job(job_id)
    started = datetime.fromtimestamp(job["start-time"] / 1000, timezone.utc).isoformat(timespec="seconds")
    click.echo(f"job: {job['jid']}\nname: {job['name']}\nstate: {job['state']}\nstarted: {started}")
    for vertex in job["vertices"]:
        click.echo(f"  {vertex['status']:<10} {vertex['name']} (parallelism {vertex['parallelism']})")
    click.echo(f"taskmanagers: {', '.join(job['taskmanagers']) or '(none)'}")
    if job["checkpoint"]:
        click.echo(f"latest checkpoint: {job['checkpoint']['id']} at {job['checkpoint']['external_path']}")
    if job["restored"]:
        click.echo(f"restored from checkpoint: {job['restored']['id']} at {job['restored']['external_path']}")
    if job["failure"]:
        click.echo(f"latest failure: {job['failure']}")


@jobs.command()
@jobmanager_option
@click.argument("job_id")
def cancel(jobmanager, job_id):
    """Cancel the job without a savepoint. Its latest checkpoint is kept (`rtm jobs status`
    shows it; `rtm submit --from-savepoint` resumes from it too)."""
    state = _rest(jobmanager).cancel(job_id)
    click.echo(f"job {job_id}: {state}")


@jobs.command()
@jobmanager_option
@click.option("--stop", is_flag=True, help="Then stop the job (sources stop, sinks flush): resume it later with "
              "`rtm submit --from-savepoint LOCATION`.")
@click.option("--dir", "directory", metavar="DIR",
              help="Where the savepoint goes: a path or URI the cluster can write (default: the cluster's "
              "execution.checkpointing.savepoint-dir; RTM_HOME/flink/savepoints for `rtm cluster start`).")
@click.argument("job_id")
def savepoint(jobmanager, stop, directory, job_id):
    """Take a savepoint of the job and print its location once it is complete."""
    location = _rest(jobmanager).savepoint(job_id, directory, stop=stop)
    click.echo(f"savepoint: {location}")
