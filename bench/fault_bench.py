"""Faults on the standalone cluster (not a test; the long form of
tests/integration/test_recovery.py): the campaign job with exactly-once delivery, events
at a steady rate for a few minutes, and the TaskManager that runs the job killed
(SIGKILL) several times. A cluster of kills + 1 TaskManagers of one slot each, so each
time another one has a free slot.

Printed: for each kill, the recovery time (the kill until every task runs again on
another TaskManager, restored from a checkpoint, and until the first checkpoint after it,
when exactly-once triggers flow again); then the triggers expected (`rtm campaigns
preview` of the same events, fault-free), delivered (read_committed), lost, duplicated
and unexpected.

    .venv/bin/python bench/fault_bench.py [--minutes 4] [--rate 50] [--kills 3] [--users 500]
"""

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path

os.environ.setdefault("RTM_HOME", tempfile.mkdtemp(prefix="rtm-fault-bench-"))

from rtm import flink_cluster, kafka_broker, kafka_clients, processes, settings, topics  # noqa: E402
from rtm.flink_rest import FlinkRest  # noqa: E402
from rtm.waiting import WaitFailed, wait_until  # noqa: E402

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


class Traffic(threading.Thread):
    """Events at `rate` per second for `seconds`: users in turn, each stepping a, b, a, b, ..."""

    def __init__(self, bootstrap: str, topic: str, users: int, rate: float, seconds: float):
        super().__init__(daemon=True)
        self.bootstrap, self.topic, self.users, self.rate, self.seconds = bootstrap, topic, users, rate, seconds
        self.sent: list[bytes] = []

    def run(self):
        producer = kafka_clients.new_producer(self.bootstrap)
        started = time.monotonic()
        n = 0
        while (elapsed := time.monotonic() - started) < self.seconds:
            while n < elapsed * self.rate:
                user, step = f"u{n % self.users}", n // self.users
                event = {"event_id": f"{user}-{step}", "type": "ab"[step % 2], "ts": int(time.time() * 1000),
                         "user_id": user}
                value = json.dumps(event).encode()
                producer.produce(self.topic, key=user.encode(), value=value)
                self.sent.append(value)
                n += 1
            producer.poll(0)
            time.sleep(0.02)
        if producer.flush(30):
            raise SystemExit("the events were not all acknowledged within 30 s")


def running_elsewhere(rest: FlinkRest, job_id: str, victim: str) -> dict | None:
    job = rest.job(job_id)
    ok = (job["state"] == "RUNNING" and all(v["status"] == "RUNNING" for v in job["vertices"])
          and job["taskmanagers"] and victim not in job["taskmanagers"] and job["restored"])
    return job if ok else None


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--minutes", type=float, default=4.0, help="how long events are produced")
    parser.add_argument("--rate", type=float, default=50.0, help="events per second")
    parser.add_argument("--kills", type=int, default=3)
    parser.add_argument("--users", type=int, default=500)
    args = parser.parse_args()

    home = settings.RTM_HOME
    bootstrap = kafka_broker.start().bootstrap
    names = {name: f"fault-bench-{int(time.time())}-{name}" for name in
             ("events", "profiles", "campaigns", "triggers", "sessions", "dlq", "late")}
    topics.ensure_topics(bootstrap, list(names.values()), compacted=(names["profiles"], names["campaigns"]))
    (home / "campaigns").mkdir(parents=True, exist_ok=True)
    (home / "campaigns" / "two_step.yaml").write_text(TWO_STEP)
    cluster = flink_cluster.start(processes.free_port(), taskmanagers=args.kills + 1)
    rest = FlinkRest(cluster.address)
    recoveries = []
    try:
        job_id = flink_cluster.submit(cluster.address, [
            "--bootstrap", bootstrap, "--campaigns", str(home / "campaigns"), "--delivery", "exactly-once",
            *(x for name, topic in names.items() for x in ("--topic", f"{name}={topic}"))])
        wait_until(lambda: rest.job(job_id)["checkpoint"], 180, 1, "the job's first checkpoint")
        seconds = args.minutes * 60
        traffic = Traffic(bootstrap, names["events"], args.users, args.rate, seconds)
        started = time.monotonic()
        traffic.start()
        for kill in range(args.kills):
            time.sleep(max(0.0, started + seconds * (kill + 1) / (args.kills + 1) - time.monotonic()))
            before = wait_until(lambda: (job := rest.job(job_id))["state"] == "RUNNING" and job["taskmanagers"]
                                and job["checkpoint"] and job, 120, 0.5, "the job to run")
            [victim] = before["taskmanagers"]
            os.kill(cluster.taskmanager_pid(victim), signal.SIGKILL)
            killed = time.monotonic()
            after = wait_until(lambda: running_elsewhere(rest, job_id, victim), 180, 0.2,
                               f"the job to run again after the kill of {victim}")
            running_s = time.monotonic() - killed
            wait_until(lambda: rest.job(job_id)["checkpoint"]["id"] > after["restored"]["id"], 120, 0.2,
                       "a checkpoint after the restart")
            recoveries.append((victim, after["taskmanagers"], after["restored"]["id"], running_s,
                               time.monotonic() - killed))
            print(f"kill {kill + 1}: {victim} (SIGKILL) -> running on {', '.join(after['taskmanagers'])} from "
                  f"checkpoint {after['restored']['id']} after {running_s:.1f} s; next checkpoint "
                  f"{recoveries[-1][4]:.1f} s after the kill", flush=True)
        traffic.join()

        events_file = home / "events.jsonl"
        events_file.write_bytes(b"".join(value + b"\n" for value in traffic.sent))
        preview = subprocess.run(
            [str(Path(sys.executable).with_name("rtm")), "campaigns", "preview", "--campaigns", str(home / "campaigns"),
             "--events", str(events_file)], capture_output=True, text=True, check=True)
        expected = Counter(json.loads(line)["trigger_id"] for line in preview.stdout.splitlines())

        def delivered() -> Counter:
            return Counter(json.loads(m.value())["trigger_id"]
                           for m in kafka_clients.read(bootstrap, names["triggers"], from_beginning=True, to_end=True,
                                                       timeout_s=3))

        try:  # the last events' triggers commit with the next checkpoints
            wait_until(lambda: sum(delivered().values()) >= sum(expected.values()), 120, 2, "every trigger")
        except WaitFailed as err:  # report what did arrive
            print(f"({err})")
        time.sleep(12)  # one more checkpoint: room for duplicates to show
        got = delivered()
        state = rest.job(job_id)["state"]
    finally:
        flink_cluster.stop()
        kafka_broker.stop()
    lost = sum((expected - got).values())
    duplicated = sum(count - 1 for count in got.values() if count > 1)
    unexpected = sum(count for trigger_id, count in got.items() if trigger_id not in expected)
    print(f"events: {len(traffic.sent)} at {args.rate:g}/s over {args.minutes:g} min, {args.users} users; "
          f"job {state} after {len(recoveries)} kills")
    print(f"triggers expected {sum(expected.values())}, delivered {sum(got.values())}, lost {lost}, "
          f"duplicated {duplicated}, unexpected {unexpected}")
    print("recovery (kill -> running again / -> next checkpoint): "
          + ", ".join(f"{r[3]:.1f} s / {r[4]:.1f} s" for r in recoveries))
    print(f"(load average at end {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores)")


if __name__ == "__main__":
    main()
