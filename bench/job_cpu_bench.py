"""Benchmark (not a test): CPU time per event of each thread of the campaign job, A/B.

    .venv/bin/python bench/job_cpu_bench.py [--checkout DIR ...] [--rounds 3] [--events-file F]

Runs `rtm run --bounded` over the peer benchmark's 200k events and two campaigns (as
bench/preview_bench.py) on an embedded broker, and reads /proc/<JVM>/task/*/stat until
the MiniCluster's JVM exits: the CPU seconds of each thread, by thread name. The job's
bottleneck is the thread of its keyed task ("campaign engine -> outputs"): the Python
engine runs on it, embedded, with the state, timer and output calls around it. The CPU
time of one thread moves far less on a busy machine than wall time does, which makes it
the figure to compare changes by. With several --checkout dirs (default: this one) the
rounds interleave (A B A B ...); each runs with that checkout on PYTHONPATH and its own
.jars/ (this one's when it has none). Only ratios within one run count.
"""

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient, NewTopic
from preview_bench import PEERS, ensure_events, peer_campaigns

# A broker, checkpoints and logs of its own, beside any other (rtm.settings reads it at import).
os.environ["RTM_HOME"] = tempfile.mkdtemp(prefix="job-cpu-bench-")
from rtm import kafka_broker  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
OUTPUTS = ("triggers", "sessions", "dlq", "late", "campaigns", "profiles")
ENGINE_THREAD = "campaign engine"  # Linux keeps the first 15 characters of a thread name


def load_events(bootstrap: str, topic: str, events_file: Path) -> int:
    admin = AdminClient({"bootstrap.servers": bootstrap})
    admin.create_topics([NewTopic(topic, 1, 1)])[topic].result()
    producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 50, "queue.buffering.max.messages": 1_000_000})
    count = 0
    with open(events_file, "rb") as lines:
        for line in lines:
            event = json.loads(line)
            producer.produce(topic, line.rstrip(b"\n"), key=event["user_id"].encode(), timestamp=event["ts"])
            producer.poll(0)
            count += 1
    producer.flush()
    return count


def thread_cpu_s(pid: int) -> Counter:
    """CPU seconds per thread name of process `pid`, sampled until it exits."""
    ticks: dict[str, tuple[str, int]] = {}
    while os.path.exists(f"/proc/{pid}"):
        try:
            tids = os.listdir(f"/proc/{pid}/task")
        except OSError:
            break
        for tid in tids:
            try:
                name = Path(f"/proc/{pid}/task/{tid}/comm").read_text().strip()
                fields = Path(f"/proc/{pid}/task/{tid}/stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            ticks[tid] = (name, int(fields[11]) + int(fields[12]))  # utime + stime
        time.sleep(0.3)
    per_name: Counter = Counter()
    for name, used in ticks.values():
        per_name[name] += used / os.sysconf("SC_CLK_TCK")
    return per_name


def child_jvm(parent: subprocess.Popen) -> int:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        found = subprocess.run(["pgrep", "-P", str(parent.pid), "java"], capture_output=True, text=True).stdout.split()
        if found:
            return int(found[0])
        if parent.poll() is not None:
            raise SystemExit(f"rtm run exited with {parent.returncode} before its JVM started")
        time.sleep(0.2)
    raise SystemExit("rtm run started no JVM within 60 s")


def one_run(checkout: Path, bootstrap: str, campaigns: Path, run_id: str) -> tuple[Counter, float]:
    topics = {name: f"bench.{name}.{run_id}" for name in OUTPUTS}
    admin = AdminClient({"bootstrap.servers": bootstrap})
    for future in admin.create_topics([NewTopic(t, 1, 1) for t in topics.values()]).values():
        future.result()
    cmd = [str(ROOT / ".venv" / "bin" / "rtm"), "run", "--bootstrap", bootstrap, "--campaigns", str(campaigns),
           "--bounded", "--topic", "events=bench.events"]
    for name, topic in topics.items():
        cmd += ["--topic", f"{name}={topic}"]
    jars = checkout / ".jars" if (checkout / ".jars").is_dir() else ROOT / ".jars"  # each its own rtm-flink.jar
    env = {**os.environ, "PYTHONPATH": str(checkout), "RTM_JARS_DIR": str(jars)}
    start = time.perf_counter()
    job = subprocess.Popen(cmd, cwd=checkout, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    cpu = thread_cpu_s(child_jvm(job))
    _, err = job.communicate()
    if job.returncode:
        raise SystemExit(f"rtm run in {checkout} failed: {err.decode()[-2000:]}")
    return cpu, time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkout", type=Path, action="append", help="an rtm checkout to run (repeatable)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--events-file", type=Path, default=Path(tempfile.gettempdir()) / "peer_events.jsonl",
                        help="made with the peers' generator (200k events, 10k users, seed 42) when missing")
    parser.add_argument("--peers", type=Path, default=PEERS, help="the peer benchmark's folder")
    args = parser.parse_args()
    checkouts = [c.resolve() for c in args.checkout or [ROOT]]
    ensure_events(args.events_file, args.peers)
    home = Path(os.environ["RTM_HOME"])
    broker = kafka_broker.start()
    try:
        campaigns = home / "campaigns"
        campaigns.mkdir()
        for name, text in peer_campaigns(args.peers / "peer_rtm.py").items():
            (campaigns / name).write_text(text)
        events = load_events(broker.bootstrap, "bench.events", args.events_file)
        engine: dict[Path, list[float]] = {c: [] for c in checkouts}
        for round_ in range(1, args.rounds + 1):
            for i, checkout in enumerate(checkouts):
                cpu, wall = one_run(checkout, broker.bootstrap, campaigns, f"{round_}-{i}")
                engine[checkout].append(cpu[ENGINE_THREAD] / events * 1e6)
                top = ", ".join(f"{name} {s:.1f}" for name, s in cpu.most_common(4))
                print(f"round {round_} {checkout}: engine thread {engine[checkout][-1]:.1f} us/event; "
                      f"wall {wall:.1f} s; CPU s by thread: {top}; load {os.getloadavg()[0]:.1f}", flush=True)
    finally:
        kafka_broker.stop()
        shutil.rmtree(home, ignore_errors=True)
    base = statistics.median(engine[checkouts[0]])
    for checkout in checkouts:
        median = statistics.median(engine[checkout])
        print(f"median {checkout}: engine thread {median:.1f} us/event, {median / base:.2f}x the first")


if __name__ == "__main__":
    sys.exit(main())
