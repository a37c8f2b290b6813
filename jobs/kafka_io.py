"""Kafka in and out of rtm's jobs, with the per-record work in the JVM.

An event should meet one Python operator only: the campaign engine. So everything before
and after it runs in Java, from rtm-flink.jar (built by `make jars` from jars/src/): the
source's deserializer reads the message key, the value bytes (None for a tombstone), the
topic, partition and offset, and of an event the user key and `ts`; event time is
assigned in the source, so watermarks are per partition; SplitInputs, chained to the
source, sends what cannot be keyed to the DLQ and marks the end of a bounded input; the
sink's serializer writes each record to the topic of its output. (PyFlink's own Kafka
source gives Python only the value and throws on tombstones; the Table API route keeps
them but costs two bridges and a Python operator for every step.)

Rows (their types are declared once, in Java: io.rtm.flink.Inputs and RoutedRecords):
  input  Row(kind, ts, key, value, topic, partition, offset): a record as read, in the JVM
  read   Row(user_key, reason, input): a record before keying (reason: why it cannot be keyed)
  keyed  Row(user_key, input framed as bytes): udfs.rows.read_input reads the frame
  routed (output, key, value) framed as bytes: to the topic of `output`; value None writes a
         tombstone (udfs.rows.routed_out writes the frame)
(udfs.rows has what the Python functions need of them.)
"""

from dataclasses import dataclass, field

from pyflink.common import Duration, Row, Types, WatermarkStrategy
from pyflink.common.typeinfo import _from_java_type
from pyflink.datastream import DataStream, KeyedStream, StreamExecutionEnvironment
from pyflink.datastream.connectors.base import DeliveryGuarantee
from pyflink.datastream.connectors.hybrid_source import HybridSource
from pyflink.datastream.connectors.kafka import (
    KafkaOffsetResetStrategy,
    KafkaOffsetsInitializer,
    KafkaSink,
    KafkaSource,
)
from pyflink.java_gateway import get_gateway

from rtm import kafka_config

AT_LEAST_ONCE = "at-least-once"
EXACTLY_ONCE = "exactly-once"
# Under the broker's default transaction.max.timeout.ms (15 min); the connector's own
# default (1 h) makes exactly-once jobs fail at start.
TRANSACTION_TIMEOUT_MS = 600_000

# No limit on how far ahead of its Kafka timestamp an event may be (Java's Long.MAX_VALUE).
NO_FUTURE_LIMIT = 2**63 - 1

# Records that did not come from Kafka (a backtest's files), for `raw_records`.
RAW_RECORD = Types.ROW_NAMED(
    ["kind", "key", "value", "topic", "partition", "offset"],
    [Types.STRING(), Types.STRING(), Types.PRIMITIVE_ARRAY(Types.BYTE()), Types.STRING(), Types.INT(), Types.LONG()],
)


def _rtm():
    return get_gateway().jvm.io.rtm.flink


def routed_type():
    """The type of routed records, for the `output_type` of a Python function that emits them."""
    return _from_java_type(_rtm().RoutedRecords.ROUTED)


def watermarks(out_of_orderness_ms: int, idle_ms: int) -> WatermarkStrategy:
    """Event time from each record's `ts` (Java, so no Python assigner runs), a watermark
    that trails it by `out_of_orderness_ms`, and an input quiet for `idle_ms` stops holding
    the watermark back."""
    jvm = get_gateway().jvm
    j_strategy = (
        jvm.org.apache.flink.api.common.eventtime.WatermarkStrategy.forBoundedOutOfOrderness(
            Duration.of_millis(out_of_orderness_ms)._j_duration
        )
        .withTimestampAssigner(_rtm().InputTime())
        .withIdleness(Duration.of_millis(idle_ms)._j_duration)
    )
    return WatermarkStrategy(j_strategy)


@dataclass(frozen=True)
class SplitInputs:
    """What SplitInputs makes of a stream of read rows."""

    keyable: DataStream  # keyed rows
    dead_letters: DataStream  # routed records for DLQ
    end_of_input: DataStream  # keyed rows: one END input when a bounded input ends


def split_inputs(read: DataStream, name: str, uid: str) -> SplitInputs:
    rtm = _rtm()
    j_split = read._j_data_stream.transform(name, rtm.Inputs.KEYED, rtm.SplitInputs()).uid(uid)
    return SplitInputs(
        DataStream(j_split),
        DataStream(j_split.getSideOutput(rtm.SplitInputs.DEAD_LETTERS)),
        DataStream(j_split.getSideOutput(rtm.SplitInputs.END_OF_INPUT)),
    )


def key_by_user(keyable: DataStream) -> KeyedStream:
    """Keyed rows keyed by their user key in the JVM; Python functions on it get the framed
    input records (udfs.rows.read_input).

    PyFlink's own key_by would run the key selector in a Python operator of its own."""
    jvm = get_gateway().jvm
    j_key_type = Types.ROW([Types.STRING()]).get_java_type_info()
    j_keyed = keyable._j_data_stream.keyBy(
        jvm.org.apache.flink.streaming.api.functions.python.KeyByKeySelector(), j_key_type
    )
    return KeyedStream(j_keyed, Types.PRIMITIVE_ARRAY(Types.BYTE()), keyable)


def campaign_engine(keyable: DataStream, broadcast: DataStream, config: bytes, name: str, uid: str) -> DataStream:
    """Routed records of the campaign engine over keyed rows `keyable`, keyed by user key in
    the JVM, and keyed rows `broadcast` that every instance sees: io.rtm.flink.CampaignEngineOperator,
    which runs udfs.campaign_engine in batches. (PyFlink's own keyed functions cross into
    Python for every record, state access and timer; its key_by adds a Python operator.)"""
    j_engine = _rtm().CampaignEngineOperator.apply(keyable._j_data_stream, broadcast._j_data_stream, config, name, uid)
    return DataStream(j_engine)


def raw_records(env: StreamExecutionEnvironment, records: list[Row], name: str, uid: str,
                max_future_ms: int = NO_FUTURE_LIMIT) -> DataStream:
    """Read rows from RAW_RECORD rows in memory, read as the Kafka sources read records; an
    event more than `max_future_ms` ahead of the largest event time before it is refused."""
    rtm = _rtm()
    raw = env.from_collection(records, type_info=RAW_RECORD)
    # One instance, in file order: "the largest event time before it" means the file's order.
    read = raw._j_data_stream.map(rtm.RawRecords(max_future_ms), rtm.Inputs.READ).setParallelism(1)
    return DataStream(read.name(name).uid(uid))


@dataclass
class KafkaIO:
    """The Kafka sources and sinks of one job; `execute` runs it."""

    env: StreamExecutionEnvironment
    bootstrap: str
    group_id: str
    delivery: str = AT_LEAST_ONCE
    # Bounded: read each topic up to the end offsets it has when the job starts, then finish.
    bounded: bool = False
    # Kafka client settings for every source and sink (security: SASL, TLS); default: the
    # file of --kafka-config or RTM_KAFKA_CONFIG (rtm.kafka_config), if any.
    properties: dict[str, str] = field(default_factory=kafka_config.java)

    def __post_init__(self):
        if self.delivery not in (AT_LEAST_ONCE, EXACTLY_ONCE):
            raise ValueError(f"delivery must be {AT_LEAST_ONCE!r} or {EXACTLY_ONCE!r}, not {self.delivery!r}")

    def kafka_source(self, topic: str, kind: str, *, from_beginning: bool = True, wall_clock: bool = False,
                     max_future_ms: int = NO_FUTURE_LIMIT, busy: bool = False) -> KafkaSource:
        """A source of read rows of `kind` from `topic` (all partitions). `from_beginning`
        False resumes from the offsets the job's group committed (earliest without any);
        `wall_clock` stamps records with the wall clock instead of no event time (for live
        slow inputs, whose watermark must not hold the events' back); an event whose `ts` is
        more than `max_future_ms` ahead of its record's Kafka timestamp cannot be keyed;
        `busy` fetches in batches (for the events topic; `properties` still override it)."""
        offsets = (
            KafkaOffsetsInitializer.earliest()
            if from_beginning
            else KafkaOffsetsInitializer.committed_offsets(KafkaOffsetResetStrategy.EARLIEST)
        )
        builder = (
            KafkaSource.builder()
            .set_bootstrap_servers(self.bootstrap)
            .set_group_id(self.group_id)
            .set_topics(topic)
            .set_starting_offsets(offsets)
            .set_property("isolation.level", "read_committed")
            # Offsets commit on checkpoints; a restart without state resumes from them.
            .set_property("commit.offsets.on.checkpoint", "true")
            .set_property("client.id.prefix", f"{self.group_id}-{kind}")
        )
        if busy:
            # The broker answers a fetch once it holds 64 KiB or 5 ms have passed, not with
            # each few records that arrived since the last one: fewer, fuller fetches leave
            # the job and the broker more CPU (README, Benchmarks), for at most 5 ms of wait.
            # Slow topics keep Kafka's default, so that idle they do not poll every 5 ms.
            builder.set_property("fetch.min.bytes", "65536").set_property("fetch.max.wait.ms", "5")
        for key, value in self.properties.items():
            builder.set_property(key, value)
        if self.bounded:
            builder.set_bounded(KafkaOffsetsInitializer.latest())
        builder._j_builder.setDeserializer(_rtm().KafkaInputs(kind, wall_clock, max_future_ms))
        return builder.build()

    def read(self, source, strategy: WatermarkStrategy, name: str, uid: str) -> DataStream:
        """A stream of read rows from a source of `kafka_source` (or a HybridSource of them)."""
        # The type, since Flink cannot infer it through a HybridSource.
        return self.env.from_source(source, strategy, name, _from_java_type(_rtm().Inputs.READ)).uid(uid)

    @staticmethod
    def one_after_another(first: KafkaSource, then: KafkaSource) -> HybridSource:
        """One source that reads `first` to its end, then `then` (both bounded)."""
        return HybridSource.builder(first).add_source(then).build()

    def sink(self, records: DataStream, topics: dict[str, str], name: str, uid: str) -> None:
        """Write routed records to the topic of their output (`topics`: output -> topic)."""
        jvm = get_gateway().jvm
        j_topics = jvm.java.util.HashMap()
        for output, topic in topics.items():
            j_topics.put(output, topic)
        builder = (
            KafkaSink.builder()
            .set_bootstrap_servers(self.bootstrap)
            .set_delivery_guarantee(
                DeliveryGuarantee.EXACTLY_ONCE if self.delivery == EXACTLY_ONCE else DeliveryGuarantee.AT_LEAST_ONCE
            )
        )
        if self.delivery == EXACTLY_ONCE:
            # Each exactly-once sink needs its own prefix, stable across restarts.
            builder.set_transactional_id_prefix(f"{self.group_id}-{uid}")
            builder.set_property("transaction.timeout.ms", str(TRANSACTION_TIMEOUT_MS))
        else:
            # A trigger leaves as soon as it is made: kafka-clients 4 otherwise waits 5 ms
            # (its linger.ms) for more records to batch with it. Whatever comes in while a
            # request is in flight still goes in one batch.
            builder.set_property("linger.ms", "0")
        for key, value in self.properties.items():
            builder.set_property(key, value)
        builder._j_builder.setRecordSerializer(_rtm().RoutedRecords(j_topics))
        records.sink_to(builder.build()).name(name).uid(uid)

    def execute(self, job_name: str, detached: bool = False):
        """Run the job: wait for its JobExecutionResult, or with `detached` return its
        JobClient at once (for jobs that run until cancelled)."""
        return self.env.execute_async(job_name) if detached else self.env.execute(job_name)

