"""`rtm serve` latency with 100k users stored, and Kafka-to-SSE latency.

1. A store holding one pending pop-up for each of --users users (written straight into
   the SQLite file), then `rtm serve` on it (--pin: on core 0, the load on core 1), and GET
   /v1/users/{random user}/messages?channel=popup at --rate requests/s for --seconds
   (open loop): p50/p99 from each scheduled start. About one request in
   ten finds a message (and marks it shown), the rest find none.
2. --streams users hold a Server-Sent Events stream open; triggers for them are
   produced one at a time at --sse-rate per second; the latency is from just before the
   produce call to the event's arrival on the stream: p50/p99.

    .venv/bin/python bench/decisions_bench.py [--users 100000] [--rate 1000] [--seconds 10]
"""

import argparse
import asyncio
import json
import os
import random
import tempfile
import time
from pathlib import Path

import msgspec
import uvloop
from confluent_kafka import Producer

from http_load import Connection, load_average, open_loop, percentile, request, start_server
from rtm import kafka_broker, topics
from rtm.decisions import MessageStore
from rtm.triggers import make_trigger


def popup(user_key: str, n: int) -> dict:
    made = make_trigger(campaign_id="welcome_coupon", version=1, user_key=user_key, user_id=None,
                        anonymous_id=user_key, channel="popup", endpoint="web-popup",
                        message="Welcome! Here is $5 off your first order.", data={"coupon_code": "WELCOME5"},
                        matched_event_ids=[f"e-{n}"], event_time=int(time.time() * 1000), holdout=False)
    made.emitted_at = int(time.time() * 1000)
    return msgspec.to_builtins(made)


def fill(store_path: Path, users: int) -> float:
    started = time.perf_counter()
    store = MessageStore(store_path)
    rows = []
    for n in range(users):
        trigger = popup(f"user-{n}", n)
        rows.append((trigger["trigger_id"], trigger["user_key"], "popup", trigger["emitted_at"],
                     trigger["emitted_at"] + 3_600_000, json.dumps(trigger).encode()))
    store.add(rows, "unused", {})
    store.close()
    return time.perf_counter() - started


async def sse_latencies(host, port, bootstrap, topic, streams: int, rate: float, seconds: float) -> list[float]:
    sent: dict[str, float] = {}
    latencies: list[float] = []

    async def listen(user: str, ready: asyncio.Event) -> None:
        connection = await Connection.open(host, port)
        connection.writer.write(request("GET", f"/v1/users/{user}/stream?channel=popup"))
        await connection.reader.readuntil(b"\r\n\r\n")
        ready.set()
        while True:
            line = await connection.reader.readline()
            if line.startswith(b"id: "):
                arrived = time.perf_counter()
                latencies.append(arrived - sent.pop(line[4:].strip().decode()))

    readies = [asyncio.Event() for _ in range(streams)]
    tasks = [asyncio.create_task(listen(f"sse-{n}", ready)) for n, ready in enumerate(readies)]
    await asyncio.gather(*(ready.wait() for ready in readies))
    producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 0})
    for n in range(int(rate * seconds)):
        trigger = popup(f"sse-{n % streams}", n)
        sent[trigger["trigger_id"]] = time.perf_counter()
        producer.produce(topic, key=trigger["user_key"].encode(), value=json.dumps(trigger).encode())
        producer.poll(0)
        await asyncio.sleep(1 / rate)
    producer.flush(10)
    deadline = time.perf_counter() + 5
    while sent and time.perf_counter() < deadline:
        await asyncio.sleep(0.05)
    for task in tasks:
        task.cancel()
    if sent:
        print(f"  {len(sent)} triggers did not arrive on their stream within 5 s")
    return latencies


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--users", type=int, default=100_000)
    parser.add_argument("--rate", type=float, default=1000.0, help="GET requests/s")
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--streams", type=int, default=100, help="open SSE streams")
    parser.add_argument("--sse-rate", type=float, default=100.0, help="triggers/s produced to the streams")
    parser.add_argument("--pin", action="store_true",
                        help="the server on core 0, the load on core 1 (on a shared machine the server then "
                             "also waits for whatever else runs on core 0)")
    args = parser.parse_args()
    if args.pin:
        os.sched_setaffinity(0, {1})

    bootstrap = kafka_broker.resolve_bootstrap(None)
    topic = f"bench-serve-{int(time.time())}"
    topics.ensure_topics(bootstrap, [topic])
    workdir = Path(tempfile.mkdtemp(prefix="decisions-bench-"))
    store = workdir / "decisions.sqlite"
    took = fill(store, args.users)
    placed = "serve on core 0, load on core 1" if args.pin else "not pinned"
    print(f"load average before: {load_average()}; {args.users:,} users' pop-ups stored in {took:.1f} s "
          f"({store.stat().st_size / 1e6:.0f} MB); {placed}")
    process, host, port = start_server(["serve", "--bootstrap", bootstrap, "--topic", topic, "--store", str(store)],
                                       workdir / "log",
                                       core=0 if args.pin else None)
    try:
        pick = random.Random(7)
        # One request in ten asks for a user with a pending pop-up, the rest for unknown ones.
        paths = [request("GET", f"/v1/users/{'user' if n % 10 == 0 else 'nobody'}-"
                                f"{pick.randrange(args.users)}/messages?channel=popup") for n in range(20_000)]
        latencies, statuses = open_loop(host, port, lambda i: paths[i % len(paths)], args.rate, args.seconds)
        print(f"GET messages at {args.rate:,.0f} requests/s for {args.seconds:.0f} s, {args.users:,} users stored: "
              f"p50 {percentile(latencies, 0.5) * 1000:.2f} ms, p99 {percentile(latencies, 0.99) * 1000:.2f} ms, "
              f"max {max(latencies) * 1000:.1f} ms (answers {statuses})")
        latencies = uvloop.run(sse_latencies(host, port, bootstrap, topic, args.streams, args.sse_rate, args.seconds))
        print(f"Kafka to SSE, {args.streams} streams, {args.sse_rate:.0f} triggers/s for {args.seconds:.0f} s: "
              f"p50 {percentile(latencies, 0.5) * 1000:.1f} ms, p99 {percentile(latencies, 0.99) * 1000:.1f} ms, "
              f"max {max(latencies) * 1000:.1f} ms ({len(latencies)} pushed)")
    finally:
        process.terminate()
        process.wait(30)
    print(f"load average after: {load_average()}")


if __name__ == "__main__":
    main()
