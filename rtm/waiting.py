"""Waiting for something outside this process: a broker, a cluster, a job, a savepoint."""

import time
from collections.abc import Callable
from typing import TypeVar

from rtm.errors import RtmError

T = TypeVar("T")


class WaitFailed(RtmError):
    """What was awaited did not happen: the time ran out, or waiting was given up."""


def wait_until(predicate: Callable[[], T], timeout_s: float, every_s: float, what: str,
               give_up: Callable[[], bool] | None = None) -> T:
    """The first truthy value of `predicate()`, asked every `every_s` seconds.

    WaitFailed, saying `what` was awaited, after `timeout_s`, or as soon as `give_up()` is
    true (say, the process that should answer has died).
    """
    deadline = time.monotonic() + timeout_s
    while not (value := predicate()):
        if give_up is not None and give_up():
            raise WaitFailed(f"gave up waiting for {what}")
        if time.monotonic() > deadline:
            raise WaitFailed(f"timed out after {timeout_s:g} s waiting for {what}")
        time.sleep(every_s)
    return value
