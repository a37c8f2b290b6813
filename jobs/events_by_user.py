"""The skeleton job: events in, keyed by user key, one record per event out.

`build_pipeline` takes the events as a stream of Kafka-shaped records and returns the
named output streams; how they are read and written (Kafka, collections in tests) is
the caller's choice. The campaign job grows from this shape.
"""

from pyflink.common import Types
from pyflink.datastream import DataStream, StreamExecutionEnvironment

from jobs.kafka_io import ROUTED_OUT, KafkaIO, routed_out
from rtm import settings
from udfs.parsing import DEAD_LETTERS, DLQ, USER_INPUT, ParseEvents

JOB_NAME = "rtm-events-by-user"
OUTPUT_TOPIC = "rtm.events.by-user"
OUT = "out"


def build_pipeline(events: DataStream) -> DataStream:
    """ROUTED_OUT rows from RECORD_IN events: OUT (each event under its user key) and DLQ."""
    parsed = events.process(ParseEvents(), output_type=USER_INPUT).name("parse events").uid("parse-events")
    by_user = parsed.key_by(lambda event: event.user_key, key_type=Types.STRING())
    out = (
        by_user.map(lambda event: routed_out(OUT, event.user_key, event.raw), output_type=ROUTED_OUT)
        .name("event per user")
        .uid("event-per-user")
    )
    return out.union(parsed.get_side_output(DEAD_LETTERS))


def run(
    env: StreamExecutionEnvironment,
    bootstrap: str,
    *,
    source_topic: str = settings.EVENTS_TOPIC,
    output_topic: str = OUTPUT_TOPIC,
    dlq_topic: str = settings.DLQ_TOPIC,
    bounded: bool = False,
):
    """Wire the pipeline to Kafka and run it; returns when a bounded run has read all."""
    kafka = KafkaIO(env, bootstrap, group_id=JOB_NAME, bounded=bounded)
    kafka.sink_routed(build_pipeline(kafka.source(source_topic)), {OUT: output_topic, DLQ: dlq_topic})
    return kafka.execute(JOB_NAME)
