"""`rtm compile`: build the engine's compiled modules (rtm.compiled)."""

import time

import click

from rtm import compiled


@click.command()
@click.option("--if-stale", is_flag=True, help="Only when they are missing or do not match their sources.")
def compile(if_stale: bool) -> None:  # noqa: A001 - the command's name
    """Compile the engine's per-event modules with Cython (about 0.7x the time per event).

    Without them rtm runs the same code as Python. A module whose source changed after
    the build runs as Python until the next `rtm compile`.
    """
    if if_stale and compiled.stale_modules() == []:
        click.echo(f"the compiled modules are up to date ({compiled.COMPILED_DIR})")
        return
    start = time.monotonic()
    compiled.build()
    click.echo(f"compiled {len(compiled.MODULES)} modules into {compiled.COMPILED_DIR} "
               f"in {time.monotonic() - start:.0f} s")
