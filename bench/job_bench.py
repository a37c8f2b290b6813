"""The campaign job end to end through Kafka, against a JVM-only Flink SQL MATCH_RECOGNIZE job.

Both jobs run with the same MiniCluster settings (flink-conf/config.yaml, parallelism 1,
one partition per topic) on the same generated traffic, one after the other, in one run:

- Throughput: N events are produced first; then each job reads them all (bounded), and
  events/s is N over the span from the first to the last append of the job's outputs
  (rtm: triggers and sessions; SQL: matches). Output topics stamp records at append
  (LogAppendTime), so job start-up and shutdown are outside the span.
- Latency: each job runs live; once it has answered a probe, the traffic is produced at
  a steady rate with `ts` = wall-clock produce time. Per output, latency is its append
  time minus the produce time of its completing event (the last of the trigger's
  `matched_event_ids`; the match's last row). Only outputs completed by an event of the
  measured window count: a warm-up before it and a tail after it keep start-up and the
  end of the stream out.

rtm runs the reference campaigns (campaigns/) with profiles for the known users. The
SQL job matches three page_view events in a row per user key (cf.
campaigns/three_page_views.yaml; in generated traffic both find the same visits), with
the same 5 s out-of-orderness bound. MATCH_RECOGNIZE emits a match only once the
watermark passes it, so that wait is part of its latency.

    .venv/bin/python bench/job_bench.py [--events 100000] [--rate 1000] [--seconds 20] [--rtm-live-only]
"""

import argparse
import dataclasses
import json
import math
import shutil
import tempfile
import time
from itertools import islice
from pathlib import Path

from confluent_kafka import TIMESTAMP_LOG_APPEND_TIME, Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient
from pyflink.table import EnvironmentSettings, TableEnvironment

from jobs import campaign_job, startup
from jobs.environment import local_environment
from kafka_io_bench import create_topic
from rtm import flink_config, generator, kafka_broker, kafka_clients, settings
from rtm.events import user_key
from rtm.time_rules import TimeRules

COMPARABLE = "three_page_views"  # the reference campaign the SQL pattern mirrors
OUT_OF_ORDERNESS_S = TimeRules().out_of_orderness_ms // 1000  # the same bound for both jobs
APPEND_TIME_OUTPUTS = ("triggers", "sessions")

SQL_EVENTS = """CREATE TEMPORARY TABLE bench_events (
  `event_id` STRING,
  `type` STRING,
  `ts` BIGINT,
  `user_id` STRING,
  `anonymous_id` STRING,
  `rowtime` AS COALESCE(TO_TIMESTAMP_LTZ(`ts`, 3), TO_TIMESTAMP_LTZ(0, 3)),
  WATERMARK FOR `rowtime` AS `rowtime` - INTERVAL '{bound}' SECOND
) WITH (
  'connector' = 'kafka',
  'topic' = '{topic}',
  'properties.bootstrap.servers' = '{bootstrap}',
  'properties.group.id' = 'bench-sql',
  'scan.startup.mode' = 'earliest-offset',
  {bounded}
  'format' = 'json',
  'json.ignore-parse-errors' = 'true'
)"""
SQL_MATCHES = """CREATE TEMPORARY TABLE bench_matches (
  `user_key` STRING,
  `first_event_id` STRING,
  `last_event_id` STRING,
  `event_time` BIGINT
) WITH (
  'connector' = 'kafka',
  'topic' = '{topic}',
  'properties.bootstrap.servers' = '{bootstrap}',
  'sink.delivery-guarantee' = 'at-least-once',
  'format' = 'json'
)"""
SQL_PATTERN = """INSERT INTO bench_matches
SELECT user_key, first_event_id, last_event_id, event_time
FROM (
  SELECT COALESCE(NULLIF(`user_id`, ''), `anonymous_id`) AS user_key, `event_id`, `type`, `ts`, `rowtime`
  FROM bench_events
) MATCH_RECOGNIZE (
  PARTITION BY user_key
  ORDER BY `rowtime`
  MEASURES A.`event_id` AS first_event_id, C.`event_id` AS last_event_id, C.`ts` AS event_time
  ONE ROW PER MATCH
  AFTER MATCH SKIP PAST LAST ROW
  PATTERN (A B C)
  DEFINE A AS A.`type` = 'page_view', B AS B.`type` = 'page_view', C AS C.`type` = 'page_view'
)"""


def now_ms() -> int:
    return time.time_ns() // 1_000_000


def say(text: str) -> None:
    print(text, flush=True)


def traffic(count: int, seed: int, spread_ms: int) -> tuple[list[dict], int]:
    """The first `count` generated events (event-time order) and the number of users."""
    users = count // 6 + 1
    while True:
        events = list(islice(generator.generate(users, seed=seed, spread_ms=spread_ms), count))
        if len(events) == count:
            return events, users
        users = users * 11 // 10 + 1


def job_topics(bootstrap: str, prefix: str) -> settings.Topics:
    """Fresh topics for one job; its outputs stamped at append."""
    names = {f.name: f"{prefix}-{f.name}" for f in dataclasses.fields(settings.Topics)}
    for output, name in names.items():
        create_topic(bootstrap, name, append_time=output in APPEND_TIME_OUTPUTS)
    return settings.Topics(**names)


def delete_topics(bootstrap: str, prefix: str) -> None:
    """Drop this run's topics: a development broker keeps everything."""
    admin = AdminClient({"bootstrap.servers": bootstrap})
    names = [name for name in admin.list_topics(timeout=10).topics if name.startswith(prefix)]
    if not names:
        return
    for future in admin.delete_topics(names, operation_timeout=30).values():
        future.result()


def reference_campaigns() -> dict[str, str]:
    """The reference campaigns and policy, as `rtm run` starts with them."""
    return startup.definitions(startup.folder_campaigns(settings.CAMPAIGNS_DIR))


def write_events(bootstrap: str, topic: str, events: list[dict]) -> None:
    kafka_clients.write(bootstrap, topic, ((user_key(e.get("user_id"), e.get("anonymous_id")), json.dumps(e).encode())
                                           for e in events))


def write_profiles(bootstrap: str, topic: str, users: int) -> None:
    kafka_clients.write(bootstrap, topic, ((p["user_id"], json.dumps(p).encode()) for p in generator.profiles(users)))


def appended(bootstrap: str, topic: str) -> list[tuple[int, dict]]:
    """(append millis, JSON value) of every record on a LogAppendTime topic."""
    records = []
    for message in kafka_clients.read(bootstrap, topic, from_beginning=True, to_end=True):
        kind, millis = message.timestamp()
        if kind != TIMESTAMP_LOG_APPEND_TIME:
            raise RuntimeError(f"{topic} does not stamp records at append")
        records.append((millis, json.loads(message.value())))
    return records


def count(bootstrap: str, topic: str) -> int:
    return sum(1 for _ in kafka_clients.read(bootstrap, topic, from_beginning=True, to_end=True))


class EndOffsets:
    """How many records a one-partition topic holds, without joining a group."""

    def __init__(self, bootstrap: str):
        self.consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "bench-offsets"})

    def __call__(self, topic: str) -> int:
        return self.consumer.get_watermark_offsets(TopicPartition(topic, 0), timeout=10)[1]

    def wait_until_quiet(self, topic: str, quiet_s: float = 3, max_s: float = 60) -> None:
        deadline = time.monotonic() + max_s
        last, since = self(topic), time.monotonic()
        while time.monotonic() - since < quiet_s and time.monotonic() < deadline:
            time.sleep(0.5)
            current = self(topic)
            if current != last:
                last, since = current, time.monotonic()


def sql_job(overrides: dict, bootstrap: str, events_topic: str, matches_topic: str, bounded: bool):
    """Submit the MATCH_RECOGNIZE job; returns its TableResult."""
    # A TableEnvironment of its own, as rtm sql run makes: StreamTableEnvironment.create over
    # a DataStream environment registers pipeline.classpaths twice, which Flink refuses.
    settings = EnvironmentSettings.new_instance().in_streaming_mode()
    t_env = TableEnvironment.create(settings.with_configuration(flink_config.local_configuration(overrides)).build())
    bounded_option = "'scan.bounded.mode' = 'latest-offset'," if bounded else ""
    t_env.execute_sql(SQL_EVENTS.format(topic=events_topic, bootstrap=bootstrap, bound=OUT_OF_ORDERNESS_S,
                                        bounded=bounded_option))
    t_env.execute_sql(SQL_MATCHES.format(topic=matches_topic, bootstrap=bootstrap))
    return t_env.execute_sql(SQL_PATTERN)


def percentile(values: list[int], share: float) -> float | None:
    """Nearest-rank percentile."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[max(0, math.ceil(len(ordered) * share) - 1)]


# --- Throughput -------------------------------------------------------------------------


def throughput(overrides: dict, bootstrap: str, run_id: str, events: list[dict], users: int,
               campaigns: dict[str, str]) -> dict:
    """Both jobs over the same pre-produced events; events/s over the output append span."""
    topics = job_topics(bootstrap, f"bench-job-{run_id}-tp")
    write_profiles(bootstrap, topics.profiles, users)
    write_events(bootstrap, topics.events, events)
    results = {}

    started = time.monotonic()
    campaign_job.run(local_environment(overrides), bootstrap, campaigns, TimeRules(live=False), topics=topics,
                     bounded=True)
    wall = time.monotonic() - started
    triggers, sessions = appended(bootstrap, topics.triggers), appended(bootstrap, topics.sessions)
    stamps = [millis for millis, _ in triggers + sessions]
    span = (max(stamps) - min(stamps)) / 1000
    by_campaign = {}
    for _, trigger in triggers:
        by_campaign[trigger["campaign_id"]] = by_campaign.get(trigger["campaign_id"], 0) + 1
    results["rtm"] = {"rate": len(events) / span, "outputs": len(stamps), "span": span, "wall": wall,
                      "comparable": by_campaign.get(COMPARABLE, 0), "by_campaign": by_campaign,
                      "triggers": len(triggers), "sessions": len(sessions),
                      "dlq": count(bootstrap, topics.dlq), "late": count(bootstrap, topics.late)}

    matches_topic = f"bench-job-{run_id}-tp-matches"
    create_topic(bootstrap, matches_topic, append_time=True)
    started = time.monotonic()
    sql_job(overrides, bootstrap, topics.events, matches_topic, bounded=True).wait()
    wall = time.monotonic() - started
    stamps = [millis for millis, _ in appended(bootstrap, matches_topic)]
    span = (max(stamps) - min(stamps)) / 1000
    results["sql"] = {"rate": len(events) / span, "outputs": len(stamps), "span": span, "wall": wall,
                      "comparable": len(stamps)}
    return results


# --- Latency ----------------------------------------------------------------------------


def probe_until_answered(producer: Producer, offsets: EndOffsets, events_topic: str, output_topic: str,
                         timeout_s: float = 180) -> float:
    """Produce three landing page views of a new visitor every 0.5 s until the job writes
    its first output (rtm: a welcome coupon; SQL: a match, once the watermark passed it)."""
    started = time.monotonic()
    probe = 0
    while offsets(output_topic) == 0:
        if time.monotonic() - started > timeout_s:
            raise RuntimeError(f"no output on {output_topic} within {timeout_s} s: see pyflink/log/")
        for step in range(3):
            event = {"event_id": f"probe-{probe}-{step}", "type": "page_view", "ts": now_ms(),
                     "anonymous_id": f"probe-{probe}", "params": {"page": "landing"}}
            producer.produce(events_topic, key=event["anonymous_id"].encode(), value=json.dumps(event).encode())
        producer.flush(10)
        probe += 1
        time.sleep(0.5)
    return time.monotonic() - started


def play(producer: Producer, topic: str, events: list[dict], rate: float) -> tuple[dict[str, int], float]:
    """Produce `events` at `rate` per second, `ts` and the record timestamp set to the wall
    clock at produce; returns event_id -> produce millis, and the rate achieved."""
    # The harness shares the cores with the job and the broker, so the loop only stamps,
    # and sleeps only once 1 ms or more ahead: an encoding and a wake-up per event took
    # about 5% of a core from them at 5k events/s (README, Benchmarks).
    encoded = [(event["event_id"], user_key(event.get("user_id"), event.get("anonymous_id")).encode(),
                json.dumps({name: value for name, value in event.items() if name != "ts"})[:-1] + ', "ts": ')
               for event in events]
    produced = {}
    started = time.monotonic()
    for i, (event_id, key, value_before_ts) in enumerate(encoded):
        delay = started + i / rate - time.monotonic()
        if delay >= 0.001:
            time.sleep(delay)
        stamp = now_ms()
        producer.produce(topic, key=key, value=f"{value_before_ts}{stamp}}}".encode(), timestamp=stamp)
        producer.poll(0)
        produced[event_id] = stamp
    if producer.flush(30):
        raise RuntimeError(f"events to {topic} not acknowledged in 30 s")
    return produced, len(events) / (time.monotonic() - started)


def live_run(bootstrap: str, start, events_topic: str, output_topic: str, events: list[dict], rate: float) -> dict:
    """Start a job, wait until it answers, play the traffic, wait until its output is
    quiet, cancel it; returns the produce times and the job's outputs."""
    offsets = EndOffsets(bootstrap)
    producer = Producer({"bootstrap.servers": bootstrap, "enable.idempotence": True, "linger.ms": 1})
    started = time.monotonic()
    client = start()
    try:
        ready = time.monotonic() - started
        ready += probe_until_answered(producer, offsets, events_topic, output_topic)
        produced, achieved = play(producer, events_topic, events, rate)
        offsets.wait_until_quiet(output_topic)
    finally:
        client.cancel().result()
        offsets.consumer.close()
    return {"produced": produced, "achieved": achieved, "ready": ready, "outputs": appended(bootstrap, output_topic)}


def timed_outputs(run: dict, measured: list[str], completing, keep=lambda record: True) -> list[tuple[int, int, dict]]:
    """(produce millis of its completing event, append minus produce millis, output) of each
    output whose completing event is in `measured`, in the order those events were produced."""
    position = {event_id: i for i, event_id in enumerate(measured)}
    found = sorted(((position[completing(record)], millis, record) for millis, record in run["outputs"]
                    if keep(record) and completing(record) in position), key=lambda item: item[0])
    return [(run["produced"][completing(record)], millis - run["produced"][completing(record)], record)
            for _, millis, record in found]


def latencies(run: dict, measured: list[str], completing, keep=lambda record: True) -> list[int]:
    return [latency for _, latency, _ in timed_outputs(run, measured, completing, keep)]


def drift(values: list[int]) -> str:
    """p50 of the first and of the last quarter of the window: equal if the job kept up."""
    quarter = len(values) // 4
    if not quarter:
        return "-"
    return f"{percentile(values[:quarter], 0.5):,.0f} -> {percentile(values[-quarter:], 0.5):,.0f}"


def latency(overrides: dict, bootstrap: str, run_id: str, events: list[dict], users: int, campaigns: dict[str, str],
            rate: float, window: slice, with_sql: bool = True) -> dict:
    measured = [event["event_id"] for event in events[window]]
    results = {}

    topics = job_topics(bootstrap, f"bench-job-{run_id}-live")
    write_profiles(bootstrap, topics.profiles, users)
    def start_rtm():
        return campaign_job.run(local_environment(overrides), bootstrap, campaigns, TimeRules(live=True),
                                topics=topics, detached=True)

    rtm = live_run(bootstrap, start_rtm, topics.events, topics.triggers, events, rate)
    last_id = lambda trigger: trigger["matched_event_ids"][-1]  # noqa: E731
    timed = timed_outputs(rtm, measured, last_id)
    results["rtm"] = {"latencies": [latency for _, latency, _ in timed], "achieved": rtm["achieved"],
                      "series": [{"produced_at": at, "latency_ms": latency, "campaign_id": trigger["campaign_id"]}
                                 for at, latency, trigger in timed],
                      "ready": rtm["ready"], "dlq": count(bootstrap, topics.dlq), "late": count(bootstrap, topics.late)}
    results["rtm-comparable"] = {
        "latencies": latencies(rtm, measured, last_id, keep=lambda trigger: trigger["campaign_id"] == COMPARABLE)
    }
    if not with_sql:
        return results

    events_topic, matches_topic = f"bench-job-{run_id}-live-sql-events", f"bench-job-{run_id}-live-sql-matches"
    create_topic(bootstrap, events_topic)
    create_topic(bootstrap, matches_topic, append_time=True)
    def start_sql():
        return sql_job(overrides, bootstrap, events_topic, matches_topic, bounded=False).get_job_client()

    sql = live_run(bootstrap, start_sql, events_topic, matches_topic, events, rate)
    results["sql"] = {"latencies": latencies(sql, measured, lambda match: match["last_event_id"]),
                      "achieved": sql["achieved"], "ready": sql["ready"]}
    return results


# --- Report -----------------------------------------------------------------------------


def fmt(value, pattern="{:,.0f}") -> str:
    return "-" if value is None else pattern.format(value)


def ratio(a, b) -> str:
    return "-" if a is None or not b else f"{a / b:.2f}"


def report(args, tp: dict, lat: dict) -> None:
    rows = [
        ("rtm, all reference campaigns", tp["rtm"], lat["rtm"]),
        (f"  rtm triggers of {COMPARABLE}", None, lat["rtm-comparable"]),
        ("Flink SQL MATCH_RECOGNIZE", tp["sql"], lat["sql"]),
    ]
    say("")
    say(f"{'job':32} {'events/s':>9} {'outputs':>8} {'p50 ms':>8} {'p99 ms':>8} {'latency n':>9}  "
        "p50 first -> last quarter")
    for name, through, live in rows:
        p50, p99 = percentile(live["latencies"], 0.50), percentile(live["latencies"], 0.99)
        say(f"{name:32} {fmt(through and through['rate']):>9} {fmt(through and through['outputs']):>8} "
            f"{fmt(p50):>8} {fmt(p99):>8} {len(live['latencies']):>9,}  {drift(live['latencies'])}")
    rtm_lat, sql_lat = lat["rtm"]["latencies"], lat["sql"]["latencies"]
    say(f"{'rtm / SQL':32} {ratio(tp['rtm']['rate'], tp['sql']['rate']):>9} {'':>8} "
        f"{ratio(percentile(rtm_lat, 0.5), percentile(sql_lat, 0.5)):>8} "
        f"{ratio(percentile(rtm_lat, 0.99), percentile(sql_lat, 0.99)):>8}")
    say("(ratios: events/s above 1 means rtm is faster; latency below 1 means rtm answers sooner)")
    say("")
    say(f"events/s: {args.events:,} pre-produced events over the span from the first to the last output append "
        f"(start-up excluded): rtm {tp['rtm']['span']:.1f} s (wall {tp['rtm']['wall']:.1f} s incl. start-up), "
        f"SQL {tp['sql']['span']:.1f} s (wall {tp['sql']['wall']:.1f} s).")
    say(f"  outputs: rtm {tp['rtm']['triggers']:,} triggers + {tp['rtm']['sessions']:,} session records "
        f"(dlq {tp['rtm']['dlq']}, late {tp['rtm']['late']}); SQL {tp['sql']['outputs']:,} matches.")
    say("  rtm triggers per campaign: " + ", ".join(f"{k} {v:,}" for k, v in sorted(tp["rtm"]["by_campaign"].items())))
    say(f"  same events: {COMPARABLE} triggers {tp['rtm']['comparable']:,}, SQL matches {tp['sql']['comparable']:,} "
        "(PATTERN (A B C), three page_view in a row per user key).")
    say(f"latency: append time of the output minus produce time of its completing event, for events produced "
        f"in a {args.seconds} s window at {args.rate:,.0f}/s (after {args.warmup} s warm-up, before a "
        f"{args.tail} s tail); achieved rate rtm {lat['rtm']['achieved']:,.0f}/s, SQL {lat['sql']['achieved']:,.0f}/s; "
        f"job answered its probe after rtm {lat['rtm']['ready']:.1f} s, SQL {lat['sql']['ready']:.1f} s.")
    say(f"  rtm live dlq {lat['rtm']['dlq']}, late {lat['rtm']['late']}. The SQL job emits a match only once the "
        f"watermark (max ts - {OUT_OF_ORDERNESS_S} s) passes its last event: its latency includes that bound.")


def report_rtm_live(args, lat: dict) -> None:
    """The live half of rtm alone (--rtm-live-only)."""
    say("")
    say(f"{'job':32} {'p50 ms':>8} {'p90 ms':>8} {'p99 ms':>8} {'max ms':>8} {'latency n':>9}  p50 first -> last quarter")
    for name, key in (("rtm, all reference campaigns", "rtm"), (f"  rtm triggers of {COMPARABLE}", "rtm-comparable")):
        values = lat[key]["latencies"]
        say(f"{name:32} {fmt(percentile(values, 0.5)):>8} {fmt(percentile(values, 0.9)):>8} "
            f"{fmt(percentile(values, 0.99)):>8} {fmt(max(values, default=None)):>8} {len(values):>9,}  {drift(values)}")
    say(f"latency: as in the full run ({args.seconds} s window at {args.rate:,.0f}/s after {args.warmup} s warm-up); "
        f"achieved {lat['rtm']['achieved']:,.0f}/s; the job answered its probe after {lat['rtm']['ready']:.1f} s; "
        f"dlq {lat['rtm']['dlq']}, late {lat['rtm']['late']}.")


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=100_000, help="events for the throughput runs")
    parser.add_argument("--spread-hours", type=float, default=6,
                        help="event time over which the throughput runs' visitors arrive")
    parser.add_argument("--rate", type=float, default=1000, help="events/s produced in the latency runs")
    parser.add_argument("--seconds", type=int, default=20, help="measured window of the latency runs")
    parser.add_argument("--warmup", type=int, default=30,
                        help="seconds of traffic before the window: a fresh rtm job falls behind for its first "
                             "10-20 s (latency up to ~4 s on a busy 2-core machine), then catches up")
    parser.add_argument("--tail", type=int, default=OUT_OF_ORDERNESS_S + 3,
                        help="seconds of traffic after the window (moves the SQL watermark past it)")
    parser.add_argument("--seed", type=int, default=11)
    parser.add_argument("--series", type=Path,
                        help="also write rtm's measured triggers as JSONL (produced_at: wall millis of the completing "
                             "event, latency_ms, campaign_id), to lay the latency on a time line (README, Benchmarks)")
    parser.add_argument("--rtm-live-only", action="store_true",
                        help="only rtm's latency run: no throughput runs, no SQL job (about 1.5 minutes)")
    args = parser.parse_args()

    started = time.monotonic()
    # flink-conf/config.yaml names no checkpoint dir: state then goes to the JobManager's
    # memory, which refuses checkpoints above 5 MB, and the job fails (no restarts).
    checkpoints = Path(tempfile.mkdtemp(prefix="rtm-job-bench-"))
    overrides = {"execution.checkpointing.storage": "filesystem", "execution.checkpointing.dir": checkpoints.as_uri()}
    bootstrap = kafka_broker.start().bootstrap
    run_id = str(int(time.time()))
    campaigns = reference_campaigns()
    try:
        if not args.rtm_live_only:
            events, users = traffic(args.events, args.seed, int(args.spread_hours * 3_600_000))
            say(f"throughput: {len(events):,} events of {users:,} users, {len(campaigns)} campaign records (the policy among them), broker {bootstrap}")
            tp = throughput(overrides, bootstrap, run_id, events, users, campaigns)

        first, last = int(args.rate * args.warmup), int(args.rate * (args.warmup + args.seconds))
        live_count = last + int(args.rate * args.tail)
        # Visitors arrive over 10 min of generator time, several times a visit's length,
        # so the mix of first visits, carts and games stays even while it is replayed.
        live_events, live_users = traffic(live_count, args.seed + 1, 600_000)
        say(f"latency: {live_count:,} events of {live_users:,} users at {args.rate:,.0f}/s per job")
        lat = latency(overrides, bootstrap, run_id, live_events, live_users, campaigns, args.rate, slice(first, last),
                      with_sql=not args.rtm_live_only)
    finally:
        shutil.rmtree(checkpoints, ignore_errors=True)
        delete_topics(bootstrap, f"bench-job-{run_id}-")

    if args.rtm_live_only:
        report_rtm_live(args, lat)
    else:
        report(args, tp, lat)
    if args.series:
        args.series.write_text("".join(json.dumps(point) + "\n" for point in lat["rtm"]["series"]))
        say(f"rtm's {len(lat['rtm']['series']):,} measured triggers, time line: {args.series}")
    say(f"(parallelism 1, one partition per topic, checkpoints every 10 s to the filesystem, "
        f"run took {time.monotonic() - started:.0f} s)")


if __name__ == "__main__":
    main()
