"""`rtm compile`: build the engine's compiled modules (rtm.compiled)."""

import time

import click

from rtm import compiled


@click.command()
@click.option("--if-stale", is_flag=True, help="Only when they are missing or do not match their sources.")
def compile(if_stale: bool) -> None:  # noqa: A001 - the command's name
    """Compile the per-event modules (the engine's, the job's udfs) with Cython.

    Without them rtm runs the same code as Python. A module whose source changed after
    the build runs as Python until the next `rtm compile`.
    """
    if if_stale and all(stale == [] for stale in compiled.stale().values()):
        click.echo("the compiled modules are up to date")
        return
    start = time.monotonic()
    compiled.build()
    for package in compiled.PACKAGES:
        click.echo(f"compiled {len(package.modules)} modules into {package.source_dir() / compiled.COMPILED}")
    click.echo(f"in {time.monotonic() - start:.0f} s")
