"""The skeleton job: events in, keyed by user key, one record per event out.

`build_pipeline` takes the events as a stream of Kafka-shaped records and returns the
named output streams; how they are read and written (Kafka, collections in tests) is
the caller's choice. The campaign job grows from this shape.
"""

from pyflink.common import Types
from pyflink.datastream import DataStream, StreamExecutionEnvironment

from jobs.kafka_io import RECORD_OUT, KafkaIO, record_out
from rtm import settings
from udfs.parsing import DEAD_LETTERS, PARSED_EVENT, ParseEvents

JOB_NAME = "rtm-events-by-user"
OUTPUT_TOPIC = "rtm.events.by-user"


def build_pipeline(events: DataStream) -> dict[str, DataStream]:
    """{'out': RECORD_OUT keyed by user key, 'dlq': dead letters} from RECORD_IN events."""
    parsed = events.process(ParseEvents(), output_type=PARSED_EVENT).name("parse events").uid("parse-events")
    by_user = parsed.key_by(lambda event: event.user_key, key_type=Types.STRING())
    out = (
        by_user.map(lambda event: record_out(event.user_key, event.raw), output_type=RECORD_OUT)
        .name("event per user")
        .uid("event-per-user")
    )
    return {"out": out, "dlq": parsed.get_side_output(DEAD_LETTERS)}


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
    outputs = build_pipeline(kafka.source(source_topic))
    kafka.sink(output_topic, outputs["out"])
    kafka.sink(dlq_topic, outputs["dlq"])
    return kafka.execute(JOB_NAME)
