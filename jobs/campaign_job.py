"""The campaign job: events, profiles and campaign updates in; triggers, sessions out.

    rtm.events ──▶ ParseEvents ──┐ (bad ─▶ dlq)
    rtm.profiles ─▶ ParseProfiles┴▶ key by user ─▶ CampaignEngine ─▶ triggers
    rtm.campaigns ──────────────────── broadcast ──┘   └▶ sessions, late, dlq

`build_pipeline` is the one function that builds it, for every way of running: `run`
wires it to Kafka (MiniCluster or cluster), `backtest` to files. Operators carry stable
uids so savepoints survive upgrades; the Kafka tables are declared in a fixed order
because Table operator uids are positional.
"""

from dataclasses import dataclass, field

from pyflink.common import Duration, Row, Types, WatermarkStrategy
from pyflink.datastream import DataStream, StreamExecutionEnvironment

from jobs.kafka_io import AT_LEAST_ONCE, RECORD_IN, ROUTED_OUT, KafkaIO
from rtm import settings
from udfs.campaign_engine import CAMPAIGNS_STATE, LATE, SESSIONS, TRIGGERS, CampaignEngine, TimeRules
from udfs.parsing import DEAD_LETTERS, DLQ, USER_INPUT, EventTime, ParseEvents, ParseProfiles, WallClock

JOB_NAME = "rtm-campaigns"
OUTPUTS = (TRIGGERS, SESSIONS, DLQ, LATE)  # each to the topic of that name in Topics


@dataclass(frozen=True)
class Startup:
    """What is in effect before the first event: campaigns (id -> definition JSON) and,
    in a backtest, profiles (user key -> profile)."""

    campaigns: dict[str, str] = field(default_factory=dict)
    profiles: dict[str, dict] = field(default_factory=dict)


@dataclass(frozen=True)
class Topics:
    events: str = settings.EVENTS_TOPIC
    profiles: str = settings.PROFILES_TOPIC
    campaigns: str = settings.CAMPAIGNS_TOPIC
    triggers: str = settings.TRIGGERS_TOPIC
    sessions: str = settings.SESSIONS_TOPIC
    dlq: str = settings.DLQ_TOPIC
    late: str = settings.LATE_TOPIC


def _watermarks(assigner, out_of_orderness_ms: int, idle_ms: int) -> WatermarkStrategy:
    # with_idleness must come before with_timestamp_assigner, or the assigner is dropped.
    return (
        WatermarkStrategy.for_bounded_out_of_orderness(Duration.of_millis(out_of_orderness_ms))
        .with_idleness(Duration.of_millis(idle_ms))
        .with_timestamp_assigner(assigner)
    )


def build_pipeline(
    events: DataStream,
    campaign_updates: DataStream,
    startup: Startup,
    rules: TimeRules,
    profiles: DataStream | None = None,
    idle_timeout_ms: int = 5_000,
) -> DataStream:
    """The job from RECORD_IN streams to ROUTED_OUT rows for the outputs in OUTPUTS."""
    parsed_events = events.process(ParseEvents(), output_type=USER_INPUT).name("parse events").uid("parse-events")
    user_inputs = parsed_events.assign_timestamps_and_watermarks(
        _watermarks(EventTime(), rules.out_of_orderness_ms, idle_timeout_ms)
    ).name("event time").uid("event-time")
    dead_letters = [parsed_events.get_side_output(DEAD_LETTERS)]
    if profiles is not None:
        parsed_profiles = (
            profiles.process(ParseProfiles(), output_type=USER_INPUT).name("parse profiles").uid("parse-profiles")
        )
        dead_letters.append(parsed_profiles.get_side_output(DEAD_LETTERS))
        user_inputs = user_inputs.union(
            parsed_profiles.assign_timestamps_and_watermarks(_watermarks(WallClock(), 0, idle_timeout_ms))
            .name("profile time")
            .uid("profile-time")
        )
    campaigns = (
        campaign_updates.assign_timestamps_and_watermarks(_watermarks(WallClock(), 0, idle_timeout_ms))
        .name("campaign time")
        .uid("campaign-time")
        .broadcast(CAMPAIGNS_STATE)
    )
    engine_outputs = (
        user_inputs.key_by(lambda row: row.user_key, key_type=Types.STRING())
        .connect(campaigns)
        .process(CampaignEngine(startup.campaigns, startup.profiles, rules), output_type=ROUTED_OUT)
        .name("campaign engine")
        .uid("campaign-engine")
    )
    return engine_outputs.union(*dead_letters)


def run(
    env: StreamExecutionEnvironment,
    bootstrap: str,
    startup: Startup,
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
    kafka = KafkaIO(env, bootstrap, group_id=JOB_NAME, bounded=bounded, delivery=delivery)
    # Declaration order fixes the Table operators' uids: keep it.
    outputs = build_pipeline(
        # A live run resumes events where the last one committed; the compacted topics
        # are always read whole (re-applying a profile or campaign changes nothing).
        kafka.source(topics.events, from_beginning=bounded),
        kafka.source(topics.campaigns),
        startup,
        rules,
        profiles=kafka.source(topics.profiles),
        idle_timeout_ms=idle_timeout_ms,
    )
    kafka.sink_routed(outputs, {name: getattr(topics, name) for name in OUTPUTS})
    return kafka.execute(JOB_NAME, detached=detached)


def backtest(env: StreamExecutionEnvironment, events: list[Row], startup: Startup, rules: TimeRules) -> dict[str, list[str]]:
    """The same pipeline over in-memory RECORD_IN rows; returns each output's JSON values."""
    outputs = build_pipeline(
        env.from_collection(events, type_info=RECORD_IN), env.from_collection([], type_info=RECORD_IN), startup, rules
    )
    # Collected as plain strings: rows with byte arrays cross py4j about 100x slower.
    as_text = outputs.map(lambda record: f"{record.output}\t{record.value.decode()}", output_type=Types.STRING())
    results: dict[str, list[str]] = {name: [] for name in OUTPUTS}
    with as_text.execute_and_collect(f"{JOB_NAME}-backtest") as lines:
        for line in lines:
            name, value = line.split("\t", 1)
            results[name].append(value)
    return results
