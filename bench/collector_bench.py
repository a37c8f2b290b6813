"""`rtm collect` throughput and latency against a local broker.

The collector runs as `rtm collect` (one process, one event loop); the load generator
runs here (--pin: the collector on core 0, the load on core 1). Events/s on one core =
events accepted (on Kafka, acks=all) per CPU second the collector process used, so a
busy machine neither flatters nor hides it; the wall-clock rate is printed beside it.

1. closed loop, batches of 100 events per request (16 connections);
2. closed loop, one event per request (256 connections);
3. open loop at --rate requests/s of one event each: p50/p99 from each scheduled start;
4. for comparison, the producer alone (the collector's settings) at the same rate:
   produce-to-acknowledgement p50/p99, the part of 3 that is Kafka's.

    .venv/bin/python bench/collector_bench.py [--seconds 10] [--rate 1000]
"""

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

from http_load import closed_loop, cpu_seconds, load_average, open_loop, percentile, request, start_server
from rtm import kafka_broker, kafka_clients, topics


def event(index: int) -> dict:
    return {"event_id": f"bench-{time.time_ns()}-{index}", "type": "page_view", "ts": int(time.time() * 1000),
            "anonymous_id": f"anon-{index % 10_000}", "params": {"page": "section", "section": "shoes"},
            "context": {"platform": "web", "os": "linux"}}


def producer_alone(bootstrap: str, topic: str, record: bytes, rate: float, seconds: float) -> list[float]:
    producer = kafka_clients.new_producer(bootstrap, acks="all")
    producer.produce(topic, value=record)
    producer.flush(30)  # connected, with its idempotent producer id: as warm as the collector's
    latencies: list[float] = []
    start = time.perf_counter()
    for index in range(int(rate * seconds)):
        due = start + index / rate
        while time.perf_counter() < due:
            producer.poll(0.0005)
        producer.produce(topic, value=record,
                         on_delivery=lambda err, _, due=due: latencies.append(time.perf_counter() - due))
    producer.flush(30)
    return latencies


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=10.0, help="length of each run")
    parser.add_argument("--rate", type=float, default=1000.0, help="requests/s of the latency run")
    parser.add_argument("--pin", action="store_true",
                        help="the server on core 0, the load on core 1 (on a shared machine the server then "
                             "also waits for whatever else runs on core 0)")
    args = parser.parse_args()
    if args.pin:
        os.sched_setaffinity(0, {1})

    bootstrap = kafka_broker.resolve_bootstrap(None)
    topic = f"bench-collect-{int(time.time())}"
    topics.ensure_topics(bootstrap, [topic])
    workdir = Path(tempfile.mkdtemp(prefix="collector-bench-"))
    process, host, port = start_server(["collect", "--bootstrap", bootstrap, "--topic", topic], workdir / "log",
                                       core=0 if args.pin else None)
    # Pre-built bodies: the generator should spend its core on sending, not on JSON.
    batches = [request("POST", "/v1/events", json.dumps([event(i * 100 + j) for j in range(100)]).encode())
               for i in range(200)]
    singles = [request("POST", "/v1/events", json.dumps(event(i)).encode()) for i in range(20_000)]
    placed = "collector on core 0, load on core 1" if args.pin else "not pinned"
    print(f"load average before: {load_average()}; broker {bootstrap}; {placed}")
    try:
        # Each answer waits for Kafka (linger 5 ms + acks=all): single events need many
        # requests in flight to keep the collector busy.
        for name, bodies, per_request, connections in (("batches of 100", batches, 100, 16),
                                                        ("single events", singles, 1, 256)):
            cpu = cpu_seconds(process.pid)
            count, elapsed, statuses = closed_loop(host, port, lambda i, b=bodies: b[i % len(b)], args.seconds,
                                                   connections)
            used = cpu_seconds(process.pid) - cpu
            accepted = statuses.get(202, 0) * per_request
            print(f"{name:>15}: {accepted / used:>9,.0f} events/s per collector CPU second "
                  f"({accepted / elapsed:,.0f}/s wall, {used / elapsed:.0%} of a core; answers {statuses})")
        latencies, statuses = open_loop(host, port, lambda i: singles[i % len(singles)], args.rate, args.seconds)
        print(f"{args.rate:,.0f} requests/s of one event for {args.seconds:.0f} s: "
              f"p50 {percentile(latencies, 0.5) * 1000:.2f} ms, p99 {percentile(latencies, 0.99) * 1000:.2f} ms, "
              f"max {max(latencies) * 1000:.1f} ms (answers {statuses})")
        alone = producer_alone(bootstrap, topic, json.dumps(event(0)).encode(), args.rate, args.seconds)
        print(f"the producer alone at {args.rate:,.0f} events/s: p50 {percentile(alone, 0.5) * 1000:.2f} ms, "
              f"p99 {percentile(alone, 0.99) * 1000:.2f} ms, max {max(alone) * 1000:.1f} ms")
    finally:
        process.terminate()
        process.wait(30)
    print(f"load average after: {load_average()}")


if __name__ == "__main__":
    main()
