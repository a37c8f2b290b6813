"""Recovery (issue 15 item 1): `rtm run` keeps user state across Ctrl-C and a crash, and a
job on the standalone cluster survives the loss of the TaskManager that runs it.

Real processes throughout: `rtm run` as the user starts it, a cluster of `rtm cluster
start`, the session broker; faults are real signals (SIGINT, SIGKILL).
"""

import dataclasses
import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

from click.testing import CliRunner

from job_helpers import fresh_topics, read_json, wait_for
from kafka_helpers import produce
from rtm import checkpoints, flink_cluster, processes, settings
from rtm.cli import main
from rtm.flink_rest import FlinkRest
from test_cluster import TWO_STEP
from test_delivery import committed_offset, dlq_size as end_offset

RTM = str(Path(sys.executable).with_name("rtm"))

THREE_STEP = """\
id: three_step
version: 1
pattern:
  steps:
    - event: a
    - event: b
    - event: c
action:
  channel: push
  endpoint: app
  message: "a, b, c"
"""


def _event(user: str, type: str, n: int = 0) -> tuple[bytes, bytes]:
    event = {"event_id": f"{user}-{type}-{n}", "type": type, "ts": int(time.time() * 1000), "user_id": user}
    return user.encode(), json.dumps(event).encode()


class _LocalRun:
    """`rtm run` in a process group of its own, as a terminal runs it (Ctrl-C reaches the group)."""

    def __init__(self, args, home: Path, log: Path):
        self.log = log
        self.offset = log.stat().st_size if log.exists() else 0
        # A process-mode job earlier in this test process ran its Python worker in loopback
        # here, which marks the process as a UDF worker (PYFLINK_GATEWAY_DISABLED); a child
        # `rtm run` is a client that must start its own gateway.
        env = {key: value for key, value in os.environ.items() if key != "PYFLINK_GATEWAY_DISABLED"}
        self.process = subprocess.Popen([RTM, "run", *args], env={**env, "RTM_HOME": str(home)},
                                        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                        stderr=log.open("ab"), start_new_session=True)

    def output(self) -> str:
        return self.log.read_bytes()[self.offset:].decode(errors="replace")

    def stop(self, sig) -> int:
        os.killpg(self.process.pid, sig)
        try:
            return self.process.wait(60)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            raise AssertionError(f"rtm run did not stop on {sig!r}; its output:\n{self.output()}") from None


def test_rtm_run_resumes_user_state_after_ctrl_c_and_after_a_crash_and_fresh_starts_empty(
    isolated_home, kafka_bootstrap, new_topic, tmp_path
):
    topics = fresh_topics(new_topic)
    (tmp_path / "campaigns").mkdir()
    (tmp_path / "campaigns" / "three_step.yaml").write_text(THREE_STEP)
    args = ["--bootstrap", kafka_bootstrap, "--campaigns", tmp_path / "campaigns", "--idle-timeout", "1s",
            *(f"--topic={name}={topic}" for name, topic in dataclasses.asdict(topics).items())]
    args = [str(arg) for arg in args]
    directory = checkpoints.job_dir("rtm-campaigns", kafka_bootstrap, topics)
    log = tmp_path / "run.log"

    def run_until_checkpointed(events, witness: str, witnesses: int, stop_with, *extra) -> str:
        """One `rtm run`: the events, then a witness completing the pattern (so the job has
        applied the events), a checkpoint after it, then the stop signal; its output."""
        run = _LocalRun([*args, *extra], settings.RTM_HOME, log)
        produce(kafka_bootstrap, topics.events, [*events, *(_event(witness, step) for step in "abc")])
        wait_for(lambda: len(read_json(kafka_bootstrap, topics.triggers, expected=witnesses, timeout_s=1)) >= witnesses
                 or run.process.poll() is not None, timeout_s=120, what=f"{witness}'s trigger")
        assert run.process.poll() is None, run.output()
        # A checkpoint after the witness: the job commits the offsets it covers when it completes.
        end = end_offset(kafka_bootstrap, topics.events)
        wait_for(lambda: committed_offset(kafka_bootstrap, "rtm-campaigns", topics.events) == end, timeout_s=60,
                 what="a checkpoint after the witness")
        run.stop(stop_with)
        return run.output()

    first = run_until_checkpointed([_event("returner", "a")], "witness-1", 1, signal.SIGINT)
    assert "starting with empty state" in first
    assert "Traceback" not in first

    second = run_until_checkpointed([_event("returner", "b")], "witness-2", 2, signal.SIGKILL)
    assert f"resuming from checkpoint {directory}" in second, second

    third = run_until_checkpointed([_event("returner", "c"), _event("forgotten", "a"), _event("forgotten", "b")],
                                   "witness-3", 4, signal.SIGINT)
    assert f"resuming from checkpoint {directory}" in third, third

    fresh = run_until_checkpointed([_event("forgotten", "c")], "witness-4", 5, signal.SIGINT, "--fresh")
    assert "starting with empty state (--fresh)" in fresh, fresh
    time.sleep(1)  # room for a trigger the fresh run must not send
    # At-least-once: a trigger may come again after a restart, with its same id.
    triggers = {t["trigger_id"]: t for t in read_json(kafka_bootstrap, topics.triggers, expected=10, timeout_s=2)}
    assert sorted((t["user_key"], t["matched_event_ids"]) for t in triggers.values()) == [
        ("returner", ["returner-a-0", "returner-b-0", "returner-c-0"]),  # across Ctrl-C and a crash
        *((f"witness-{n}", [f"witness-{n}-a-0", f"witness-{n}-b-0", f"witness-{n}-c-0"]) for n in range(1, 5)),
    ]  # and no trigger for `forgotten`: --fresh dropped its a and b


def _rtm(*args):
    return CliRunner().invoke(main, [str(arg) for arg in args])


def _preview(tmp_path: Path, campaigns: Path, events: list[tuple[bytes, bytes]]) -> list[str]:
    path = tmp_path / "events.jsonl"
    path.write_bytes(b"".join(value + b"\n" for _, value in events))
    result = subprocess.run([RTM, "campaigns", "preview", "--campaigns", str(campaigns), "--events", str(path)],
                            capture_output=True, text=True, check=True)
    return sorted(json.loads(line)["trigger_id"] for line in result.stdout.splitlines())


def test_a_killed_taskmanager_is_survived_without_losing_or_repeating_a_trigger(
    isolated_home, kafka_bootstrap, new_topic, tmp_path
):
    started = _rtm("cluster", "start", "--port", processes.free_port(), "--taskmanagers", 2)
    try:
        assert started.exit_code == 0, started.output
        rest = FlinkRest(started.output.strip().removeprefix("rest: http://"))
        cluster = flink_cluster.running()
        topics = fresh_topics(new_topic)
        (tmp_path / "campaigns").mkdir()
        (tmp_path / "campaigns" / "two_step.yaml").write_text(TWO_STEP)
        submitted = _rtm("submit", "--bootstrap", kafka_bootstrap, "--campaigns", tmp_path / "campaigns",
                         "--delivery", "exactly-once",
                         *(f"--topic={name}={topic}" for name, topic in dataclasses.asdict(topics).items()))
        assert submitted.exit_code == 0, submitted.output
        job_id = submitted.output.strip().removeprefix("job: ")

        # Users step through a then b at a steady rate, before, during and after the fault.
        events = [_event(f"u{n % 150}", "ab"[n // 150 % 2], n // 300) for n in range(900)]
        sent = threading.Event()

        def traffic():
            for start in range(0, len(events), 10):
                produce(kafka_bootstrap, topics.events, events[start:start + 10])
                time.sleep(0.1)
            sent.set()

        before = wait_for(lambda: (job := rest.job(job_id))["checkpoint"] and job["taskmanagers"] and job,
                          timeout_s=120, what="the job to run and complete a checkpoint")
        producer = threading.Thread(target=traffic, daemon=True)
        producer.start()
        wait_for(lambda: rest.job(job_id)["checkpoint"]["id"] > before["checkpoint"]["id"], timeout_s=60,
                 what="a checkpoint with events in it")
        [victim] = before["taskmanagers"]
        os.kill(cluster.taskmanager_pid(victim), signal.SIGKILL)
        killed = time.monotonic()
        killed_ms = time.time() * 1000

        # The REST API caches each view for a few seconds, so one answer can mix a fresh restore
        # with the tasks still listed on the dead TaskManager: wait until every view agrees.
        after = wait_for(lambda: (job := rest.job(job_id))["restored"]
                         and job["restored"]["restore_timestamp"] >= killed_ms
                         and job["taskmanagers"] and victim not in job["taskmanagers"]
                         and job["state"] == "RUNNING" and all(v["status"] == "RUNNING" for v in job["vertices"])
                         and job, timeout_s=90, what="the job to restart on the other TaskManager")
        recovered_s = time.monotonic() - killed
        assert after["restored"]["id"] >= before["checkpoint"]["id"]  # from a checkpoint, not from scratch
        assert sent.wait(120)

        expected = _preview(tmp_path, tmp_path / "campaigns", events)
        assert len(expected) >= 300
        delivered = wait_for(
            lambda: len(found := read_json(kafka_bootstrap, topics.triggers, expected=len(expected), timeout_s=2))
            >= len(expected) and found, timeout_s=90, what=f"{len(expected)} committed triggers")
        time.sleep(12)  # one more checkpoint: room for a duplicate to show
        delivered = read_json(kafka_bootstrap, topics.triggers, expected=len(expected) + 1, timeout_s=3)
        assert sorted(t["trigger_id"] for t in delivered) == expected, f"recovered in {recovered_s:.1f} s"
        assert rest.job(job_id)["state"] == "RUNNING"
    finally:
        stopped = _rtm("cluster", "stop")
        assert stopped.exit_code == 0, stopped.output
