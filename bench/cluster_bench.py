"""Scale-out on the standalone cluster (not a test): the campaign job with 1 and with 2
TaskManagers of one slot each, at parallelism = TaskManagers, over one events topic with
several partitions, in the same run on the same broker.

In thread mode the slots of one TaskManager share one embedded CPython and its GIL, so
the job scales with TaskManagers (separate JVMs), not with slots. events/s is N over the
span from the first to the last append of the job's outputs (triggers and sessions;
their topics stamp records at append), so submission and start-up are outside it.

    .venv/bin/python bench/cluster_bench.py [--users 20000] [--partitions 4] [--taskmanagers 1 2]
"""

import argparse
import json
import os
import tempfile
import time

os.environ.setdefault("RTM_HOME", tempfile.mkdtemp(prefix="rtm-cluster-bench-"))

from confluent_kafka import TIMESTAMP_LOG_APPEND_TIME, Consumer, TopicPartition  # noqa: E402
from confluent_kafka.admin import AdminClient, NewTopic  # noqa: E402

from rtm import flink_cluster, generator, kafka_broker, kafka_clients, settings  # noqa: E402
from rtm.events import parse_event  # noqa: E402
from rtm.flink_rest import FlinkRest  # noqa: E402

OUTPUTS = ("triggers", "sessions", "dlq", "late")
JOB_TIMEOUT_S = 1800


def create_topics(bootstrap: str, run_id: str, partitions: int) -> dict[str, str]:
    names = {name: f"bench-cluster-{run_id}-{name}" for name in ("events", "profiles", "campaigns", *OUTPUTS)}
    admin = AdminClient({"bootstrap.servers": bootstrap})
    wanted = [NewTopic(names["events"], partitions, 1, config={"retention.ms": "-1"})]
    wanted += [NewTopic(names[n], 1, 1, config={"cleanup.policy": "compact"}) for n in ("profiles", "campaigns")]
    wanted += [NewTopic(names[n], 1, 1, config={"retention.ms": "-1", "message.timestamp.type": "LogAppendTime"})
               for n in OUTPUTS]
    for future in admin.create_topics(wanted).values():
        future.result()
    return names


def append_span_s(bootstrap: str, topics: list[str]) -> tuple[float, int]:
    """Seconds from the first to the last append over `topics`, and how many records."""
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "bench", "enable.auto.commit": False})
    consumer.assign([TopicPartition(t, 0, 0) for t in topics])
    stamps = []
    while batch := consumer.consume(10_000, timeout=3):
        stamps += [m.timestamp()[1] for m in batch if m.timestamp()[0] == TIMESTAMP_LOG_APPEND_TIME]
    consumer.close()
    return (max(stamps) - min(stamps)) / 1000, len(stamps)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--users", type=int, default=20_000, help="generated visitors (about 8 events each)")
    parser.add_argument("--partitions", type=int, default=4)
    parser.add_argument("--taskmanagers", type=int, nargs="+", default=[1, 2])
    args = parser.parse_args()

    bootstrap = kafka_broker.start().bootstrap
    events = list(generator.generate(args.users))
    profiles = list(generator.profiles(args.users))
    results = []
    try:
        for taskmanagers in args.taskmanagers:
            names = create_topics(bootstrap, f"{int(time.time())}-{taskmanagers}", args.partitions)
            kafka_clients.write(bootstrap, names["profiles"], [(p["user_id"], json.dumps(p).encode()) for p in profiles])
            raw = [json.dumps(e).encode() for e in events]
            kafka_clients.write(bootstrap, names["events"], [(parse_event(r).key, r) for r in raw])
            cluster = flink_cluster.start(taskmanagers=taskmanagers)
            try:
                run_args = ["--bootstrap", bootstrap, "--campaigns", str(settings.CAMPAIGNS_DIR), "--bounded",
                            "--parallelism", str(taskmanagers),
                            *(x for name, topic in names.items() for x in ("--topic", f"{name}={topic}"))]
                started = time.monotonic()
                job_id = flink_cluster.submit(cluster.address, run_args)
                state = FlinkRest(cluster.address).wait_until_ended(job_id, JOB_TIMEOUT_S)
                wall = time.monotonic() - started
            finally:
                flink_cluster.stop()
            span, outputs = append_span_s(bootstrap, [names["triggers"], names["sessions"]])
            results.append((taskmanagers, len(events) / span, span, wall, outputs, state))
            print(f"{taskmanagers} TaskManager(s), parallelism {taskmanagers}: {len(events) / span:,.0f} events/s "
                  f"({len(events)} events, {outputs} outputs in {span:.1f} s; {wall:.0f} s from submit; {state})",
                  flush=True)
    finally:
        kafka_broker.stop()
    base = results[0][1]
    for taskmanagers, rate, *_ in results[1:]:
        print(f"ratio {taskmanagers} / {results[0][0]} TaskManagers: {rate / base:.2f}")
    print(f"({args.partitions} partitions, load average at end {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores)")


if __name__ == "__main__":
    main()
