"""The campaign job: events, profiles and campaign updates in; triggers (or suppressed), sessions, conversions out.

    rtm.events ───▶ split ──▶ key by user ──▶ campaign engine ──▶ triggers, suppressed, sessions,
                                                                   conversions, late, dlq
    rtm.profiles ─▶ split ─┘                      ▲
    rtm.campaigns ─▶ split ─────── broadcast ─────┘      (split: what cannot be keyed ─▶ dlq)

Everything but the engine runs in the JVM (jobs.kafka_io), so an event meets one Python
operator and crosses one network hop (the key-by). In a bounded run the profiles are read
to their end before the first event (one source reading one topic after the other), so
they are in effect from the first event, and the end of the events tells the engine the
largest event time, where event time stops.

`build_pipeline` is the one function that builds it, for every way of running: `run`
wires it to Kafka (MiniCluster or cluster), `backtest` to records in memory. Every
operator carries a stable uid, so savepoints survive upgrades.
"""

from dataclasses import dataclass

from pyflink.common import Row, Types
from pyflink.datastream import DataStream, StreamExecutionEnvironment

from jobs import kafka_io
from jobs.kafka_io import AT_LEAST_ONCE, KafkaIO
from rtm.settings import Topics
from rtm.time_rules import TimeRules
from udfs.campaign_engine import engine_config
from udfs.rows import CAMPAIGN, CONVERSIONS, DLQ, EVENT, LATE, PROFILE, SESSIONS, SUPPRESSED, TRIGGERS, read_routed

JOB_NAME = "rtm-campaigns"
OUTPUTS = (TRIGGERS, SUPPRESSED, SESSIONS, CONVERSIONS, DLQ, LATE)  # each to its topic in `run`
BOUNDED_CHECKPOINT_INTERVAL_MS = 60_000


@dataclass(frozen=True)
class Outputs:
    """The job's routed records: the engine's, and the dead letters split off before it
    (a sink of their own: a union would break the engine's chain to its sink)."""

    engine: DataStream
    dead_letters: DataStream


def build_pipeline(user_inputs: DataStream, campaign_updates: DataStream, startup_campaigns: dict[str, str],
                   rules: TimeRules, profiles: DataStream | None = None) -> Outputs:
    """The job from read rows with event time: `user_inputs` (events, and in a bounded run
    the profiles before them), `campaign_updates`, and live `profiles` as a stream of their own."""
    users = kafka_io.split_inputs(user_inputs, "split events", "split-events")
    keyable, dead_letters = users.keyable, users.dead_letters
    if profiles is not None:
        live_profiles = kafka_io.split_inputs(profiles, "split profiles", "split-profiles")
        keyable = keyable.union(live_profiles.keyable)
        dead_letters = dead_letters.union(live_profiles.dead_letters)
    campaigns = kafka_io.split_inputs(campaign_updates, "split campaigns", "split-campaigns")
    # The end of the events joins the broadcast side: every engine instance must see it.
    engine = kafka_io.campaign_engine(keyable, campaigns.keyable.union(users.end_of_input),
                                      engine_config(startup_campaigns, rules), "campaign engine", "campaign-engine")
    return Outputs(engine, dead_letters)


def run(
    env: StreamExecutionEnvironment,
    bootstrap: str,
    startup_campaigns: dict[str, str],
    rules: TimeRules,
    *,
    topics: Topics = Topics(),
    bounded: bool = False,
    delivery: str = AT_LEAST_ONCE,
    idle_timeout_ms: int = 5_000,
    detached: bool = False,
):
    """Run on Kafka; a bounded run reads each topic up to its end offsets at start.
    Returns the JobExecutionResult, or at once the JobClient when `detached`."""
    rules.check(idle_timeout_ms)  # a contradiction fails here, with the option to change, not at the 128th event
    if bounded and delivery == AT_LEAST_ONCE:
        # A bounded at-least-once run has no transaction to commit and is never resumed (a
        # replay starts empty, from the start): checkpoints every 10 s cost about a sixth of
        # its throughput (measured), so it takes one a minute. Not rarer: Flink checkpoints
        # once the sinks have ended, to finish, and when that checkpoint races a task that is
        # finishing it fails and is not retried (seen in CI), so the run waits for the next.
        env.get_checkpoint_config().set_checkpoint_interval(BOUNDED_CHECKPOINT_INTERVAL_MS)
    kafka = KafkaIO(env, bootstrap, group_id=JOB_NAME, bounded=bounded, delivery=delivery)
    event_time = kafka_io.watermarks(rules.out_of_orderness_ms, idle_timeout_ms)
    # A live run resumes events where the last one committed; the compacted topics are
    # always read whole (re-applying a profile or campaign changes nothing).
    events = kafka.kafka_source(topics.events, EVENT, from_beginning=bounded, max_future_ms=rules.max_future_ms,
                                busy=True)
    profiles = None
    if bounded:
        user_inputs = kafka.read(kafka.one_after_another(kafka.kafka_source(topics.profiles, PROFILE), events),
                                 event_time, "profiles, then events", "kafka-profiles-then-events")
    else:
        user_inputs = kafka.read(events, event_time, "events", "kafka-events")
        profiles = kafka.read(kafka.kafka_source(topics.profiles, PROFILE, wall_clock=True),
                              kafka_io.watermarks(0, idle_timeout_ms), "profiles", "kafka-profiles")
    campaigns = kafka.read(kafka.kafka_source(topics.campaigns, CAMPAIGN, wall_clock=True),
                           kafka_io.watermarks(0, idle_timeout_ms), "campaigns", "kafka-campaigns")
    outputs = build_pipeline(user_inputs, campaigns, startup_campaigns, rules, profiles)
    routes = {TRIGGERS: topics.triggers, SUPPRESSED: topics.suppressed, SESSIONS: topics.sessions,
              CONVERSIONS: topics.conversions, DLQ: topics.dlq, LATE: topics.late}
    kafka.sink(outputs.engine, routes, "outputs", "kafka-outputs")
    kafka.sink(outputs.dead_letters, {DLQ: topics.dlq}, "dead letters", "kafka-dead-letters")
    return kafka.execute(JOB_NAME, detached=detached)


def backtest(env: StreamExecutionEnvironment, profiles: list[Row], events: list[Row], startup_campaigns: dict[str, str],
             rules: TimeRules) -> dict[str, list[str]]:
    """The same pipeline over kafka_io.RAW_RECORD rows in memory (the profiles first, as a
    bounded run reads them); returns each output's JSON values."""
    rules.check()
    user_inputs = kafka_io.raw_records(env, [*profiles, *events], "records", "records",
                                       rules.max_future_ms).assign_timestamps_and_watermarks(
        kafka_io.watermarks(rules.out_of_orderness_ms, 5_000))
    outputs = build_pipeline(user_inputs, kafka_io.raw_records(env, [], "no campaigns", "no-campaigns"),
                             startup_campaigns, rules)
    # Collected as plain strings: rows with byte arrays cross py4j about 100x slower.
    as_text = outputs.engine.union(outputs.dead_letters).map(_as_text, output_type=Types.STRING())
    results: dict[str, list[str]] = {name: [] for name in OUTPUTS}
    with as_text.execute_and_collect(f"{JOB_NAME}-backtest") as lines:
        for line in lines:
            name, value = line.split("\t", 1)
            results[name].append(value)
    return results


def _as_text(frame: bytes) -> str:
    record = read_routed(frame)
    return f"{record.output}\t{record.value.decode()}"
