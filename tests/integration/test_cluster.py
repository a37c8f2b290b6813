"""The campaign job on a real standalone Flink cluster (issue 11: a real Flink cluster).

JobManager and TaskManager run as separate processes from the wheel's scripts, the job is
submitted with `flink run` through `rtm submit`, and Kafka is the session broker.
"""

import dataclasses
import json
import socket
import subprocess
import time

import pytest
from click.testing import CliRunner

from job_helpers import fresh_topics, read_json, wait_for
from kafka_helpers import produce
from rtm import flink_cluster, processes, settings
from rtm.cli import main

TWO_STEP = """\
id: two_step
version: 1
pattern:
  steps:
    - event: a
    - event: b
action:
  channel: push
  endpoint: app
  message: "a then b"
"""


def rtm(*args):
    return CliRunner().invoke(main, [str(arg) for arg in args])


def _cluster_processes(home) -> list[str]:
    """Command lines of live processes that run with this test's RTM_HOME (JobManager, TaskManagers)."""
    ps = subprocess.run(["ps", "-eo", "stat=,args="], capture_output=True, text=True, check=True).stdout
    return [line for line in ps.splitlines() if str(home) in line and not line.lstrip().startswith("Z")]


@pytest.fixture
def cluster(isolated_home):
    """A cluster of `rtm cluster start` on a free port, stopped (and checked gone) even when the test fails."""
    started = rtm("cluster", "start", "--port", processes.free_port())
    try:
        assert started.exit_code == 0, started.output
        assert not started.output.startswith("error")
        yield started.output.strip().removeprefix("rest: ")
    finally:
        stopped = rtm("cluster", "stop")
        assert stopped.exit_code == 0, stopped.output
        assert _cluster_processes(settings.RTM_HOME) == []


class _Traffic:
    def __init__(self, bootstrap, topic):
        self.bootstrap, self.topic, self.sent = bootstrap, topic, {}

    def send(self, user, type):
        event_id = f"{user}-{type}"
        self.sent[event_id] = {"event_id": event_id, "type": type, "ts": int(time.time() * 1000), "user_id": user}
        produce(self.bootstrap, self.topic, [(user.encode(), json.dumps(self.sent[event_id]).encode())])


def _submit(*args) -> str:
    result = rtm("submit", *args)
    assert result.exit_code == 0, result.output
    return result.output.strip().removeprefix("job: ")


def _jobs() -> dict[str, str]:
    listed = rtm("jobs", "list")
    assert listed.exit_code == 0, listed.output
    return {line.split()[0]: line.split()[1] for line in listed.output.splitlines()}


def test_the_campaign_job_runs_on_a_standalone_cluster_and_keeps_user_state_across_a_savepoint(
    cluster, kafka_bootstrap, new_topic, tmp_path
):
    assert cluster.startswith("http://127.0.0.1:")
    status = rtm("cluster", "status")
    # One slot per TaskManager (flink-conf): its slots would share one embedded CPython.
    assert status.exit_code == 0 and status.output.startswith(f"rest: {cluster}\ntaskmanagers: 1, slots free: 1 of 1")

    # A job that fails on the client (where `flink run` runs the script) says why, readably.
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / "broken.yaml").write_text("id: broken\nversion: 1\npattern: {steps: []}\n")
    broken = rtm("submit", "--bootstrap", kafka_bootstrap, "--campaigns", tmp_path / "broken")
    assert broken.exit_code == 2
    assert "fix the campaigns first" in broken.output and "broken.yaml:3" in broken.output
    assert "\tat " not in broken.output and "Traceback" not in broken.output
    assert _jobs() == {}

    topics = fresh_topics(new_topic)
    (tmp_path / "campaigns").mkdir()
    (tmp_path / "campaigns" / "two_step.yaml").write_text(TWO_STEP)
    options = ["--bootstrap", kafka_bootstrap, "--campaigns", tmp_path / "campaigns",
               *(f"--topic={name}={topic}" for name, topic in dataclasses.asdict(topics).items())]
    traffic = _Traffic(kafka_bootstrap, topics.events)

    first = _submit(*options)
    wait_for(lambda: _jobs() == {first: "RUNNING"}, what="the job to run")
    traffic.send("returner", "a")  # half a match, before the stop
    traffic.send("witness", "a")
    traffic.send("witness", "b")
    wait_for(lambda: read_json(kafka_bootstrap, topics.triggers, expected=1, timeout_s=1), timeout_s=90,
             what="the witness's trigger: the job runs on the cluster, and has applied the returner's `a`")

    stopped = rtm("jobs", "savepoint", first, "--stop")
    assert stopped.exit_code == 0, stopped.output
    location = stopped.output.strip().removeprefix("savepoint: ")
    assert location.startswith("file:") and str(settings.RTM_HOME / "flink" / "savepoints") in location
    wait_for(lambda: _jobs() == {first: "FINISHED"}, what="the job to finish")
    traffic.send("returner", "b")  # while no job runs: the resumed one reads it from the saved offsets

    second = _submit("--from-savepoint", location, *options)
    wait_for(lambda: read_json(kafka_bootstrap, topics.triggers, expected=2, timeout_s=1)[1:], timeout_s=90,
             what="the returner's trigger after the resume")
    time.sleep(2)  # room for a duplicate to show
    triggers = read_json(kafka_bootstrap, topics.triggers, expected=3, timeout_s=1)
    assert sorted((t["user_key"], t["matched_event_ids"]) for t in triggers) == [
        ("returner", ["returner-a", "returner-b"]),
        ("witness", ["witness-a", "witness-b"]),
    ]

    status = rtm("jobs", "status", second)
    assert status.exit_code == 0 and "state: RUNNING" in status.output and "campaign engine" in status.output
    cancelled = rtm("jobs", "cancel", second)
    assert cancelled.exit_code == 0 and cancelled.output.strip() == f"job {second}: CANCELED"

    stopped = rtm("cluster", "stop")
    assert stopped.exit_code == 0 and stopped.output.strip() == f"stopped cluster at {cluster}"
    assert rtm("cluster", "status").exit_code == 1
    unreachable = rtm("jobs", "list", "--jobmanager", cluster.removeprefix("http://"))
    assert unreachable.exit_code == 2 and "no Flink cluster answers" in unreachable.output
    assert "Traceback" not in unreachable.output


def test_commands_without_a_cluster_say_what_to_do(isolated_home):
    status = rtm("cluster", "status")
    assert status.exit_code == 1 and "rtm cluster start" in status.output
    for command in (["jobs", "list"], ["submit", "--bootstrap", "127.0.0.1:9"]):
        result = rtm(*command)
        assert result.exit_code == 2 and "rtm cluster start" in result.output, result.output
    unreachable = rtm("submit", "--jobmanager", f"127.0.0.1:{processes.free_port()}", "--bootstrap", "127.0.0.1:9")
    assert unreachable.exit_code == 2 and "no Flink cluster answers" in unreachable.output
    bad_option = rtm("submit", "--jobmanager", "127.0.0.1:9", "--no-such-option")
    assert bad_option.exit_code == 2 and "No such option '--no-such-option'" in bad_option.output
    not_an_id = rtm("jobs", "status", "42", "--jobmanager", "127.0.0.1:9")
    assert not_an_id.exit_code == 2 and "not a JobID" in not_an_id.output


def test_start_on_a_taken_port_without_jars_or_without_java_says_what_to_do(isolated_home, monkeypatch):
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", 0))
        squatter.listen()
        port = squatter.getsockname()[1]
        taken = rtm("cluster", "start", "--port", port)
    assert taken.exit_code == 2 and f"port {port}" in taken.output and "--port" in taken.output
    assert flink_cluster.running() is None and _cluster_processes(settings.RTM_HOME) == []

    monkeypatch.setattr(settings, "JARS_DIR", isolated_home / "no-jars")
    no_jars = rtm("cluster", "start")
    assert no_jars.exit_code == 2 and "make jars" in no_jars.output

    monkeypatch.setenv("JAVA_HOME", str(isolated_home / "no-jdk"))
    no_java = rtm("cluster", "start")
    assert no_java.exit_code == 2 and "Java" in no_java.output and "JAVA_HOME" in no_java.output
