"""rtm.waiting: the one wait-until loop."""

import itertools

import pytest

from rtm.waiting import WaitFailed, wait_until


def test_returns_the_first_truthy_value():
    answers = iter([None, 0, "", "ready", "later"])
    assert wait_until(lambda: next(answers), 5, 0, "an answer") == "ready"


def test_says_what_it_waited_for_when_the_time_runs_out():
    with pytest.raises(WaitFailed, match=r"timed out after 0.05 s waiting for the broker"):
        wait_until(lambda: False, 0.05, 0.01, "the broker")


def test_gives_up_at_once_when_told():
    calls = itertools.count(1)
    with pytest.raises(WaitFailed, match="gave up waiting for the cluster"):
        wait_until(lambda: next(calls) > 3, 60, 0, "the cluster", give_up=lambda: True)
    assert next(calls) == 2  # asked once, then gave up
