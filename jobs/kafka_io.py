"""Kafka sources and sinks that keep what rtm's contracts need.

PyFlink's DataStream KafkaSource hands Python only the value: the key, the topic,
partition and offset are dropped and a tombstone throws. The Table API `kafka`
connector keeps all of them (raw key, raw value or None, metadata columns), so every
rtm job reads and writes Kafka through the tables built here and bridges them to and
from the DataStream API. Sinks join one StatementSet, which `execute` attaches to the
DataStream job, so sources, Python functions and sinks run as one Flink job.

Records in:  Row(key: str|None, value: bytes|None, topic: str, partition: int, offset: int)
Records out: Row(key: str|None, value: bytes|None); value None writes a tombstone;
             or Row(output, key, value) to route each record to the topic of its output.
"""

from dataclasses import dataclass, field
from itertools import count

from pyflink.common import Row, Types
from pyflink.datastream import DataStream, StreamExecutionEnvironment
from pyflink.table import StreamTableEnvironment
from pyflink.table.expressions import col

RECORD_IN = Types.ROW_NAMED(
    ["key", "value", "topic", "partition", "offset"],
    [Types.STRING(), Types.PRIMITIVE_ARRAY(Types.BYTE()), Types.STRING(), Types.INT(), Types.LONG()],
)
RECORD_OUT = Types.ROW_NAMED(["key", "value"], [Types.STRING(), Types.PRIMITIVE_ARRAY(Types.BYTE())])
# A record for one of several topics, named by `output` (see KafkaIO.sink_routed).
ROUTED_OUT = Types.ROW_NAMED(
    ["output", "key", "value"], [Types.STRING(), Types.STRING(), Types.PRIMITIVE_ARRAY(Types.BYTE())]
)

AT_LEAST_ONCE = "at-least-once"
EXACTLY_ONCE = "exactly-once"
# Under the broker's default transaction.max.timeout.ms (15 min); the connector's own
# default (1 h) makes exactly-once jobs fail at start.
TRANSACTION_TIMEOUT_MS = 600_000


def record_out(key: str | None, value: bytes | None) -> Row:
    """An outgoing record; a sink's stream must carry `output_type=RECORD_OUT`."""
    return Row(key=key, value=value)


def routed_out(output: str, key: str | None, value: bytes | None) -> Row:
    """An outgoing record for `output`; the stream must carry `output_type=ROUTED_OUT`."""
    return Row(output=output, key=key, value=value)


def _quote(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _with_clause(options: dict[str, str]) -> str:
    return ",\n  ".join(f"{_quote(k)} = {_quote(v)}" for k, v in options.items())


@dataclass
class KafkaIO:
    """Kafka tables of one job: `source` streams in, `sink` streams out, `execute` runs all."""

    env: StreamExecutionEnvironment
    bootstrap: str
    group_id: str
    delivery: str = AT_LEAST_ONCE
    # Bounded: read each topic up to the end offsets it has when the job starts, then finish.
    bounded: bool = False
    t_env: StreamTableEnvironment = field(init=False)
    _statements: object = field(init=False)
    _names: count = field(init=False, default_factory=count)

    def __post_init__(self):
        if self.delivery not in (AT_LEAST_ONCE, EXACTLY_ONCE):
            raise ValueError(f"delivery must be {AT_LEAST_ONCE!r} or {EXACTLY_ONCE!r}, not {self.delivery!r}")
        self.t_env = StreamTableEnvironment.create(self.env)
        self._statements = self.t_env.create_statement_set()

    def _table_name(self, topic: str, role: str) -> str:
        # Stable, statement-ordered names: Table operator uids are positional.
        return f"{role}_{next(self._names)}_{topic.replace('.', '_').replace('-', '_')}"

    def source(self, topic: str, from_beginning: bool = True) -> DataStream:
        """A stream of RECORD_IN rows from `topic` (all partitions)."""
        name = self._table_name(topic, "src")
        options = {
            "connector": "kafka",
            "topic": topic,
            "properties.bootstrap.servers": self.bootstrap,
            "properties.group.id": self.group_id,
            # Offsets commit on checkpoints; a restart without state resumes from them.
            "scan.startup.mode": "earliest-offset" if from_beginning else "group-offsets",
            "properties.auto.offset.reset": "earliest",
            "properties.isolation.level": "read_committed",
            "key.format": "raw",
            "key.fields": "key",
            "value.format": "raw",
            "value.fields-include": "EXCEPT_KEY",
        }
        if self.bounded:
            options["scan.bounded.mode"] = "latest-offset"
        # BYTES keeps invalid UTF-8 exact for the DLQ (STRING would turn it into U+FFFD).
        self.t_env.execute_sql(
            f"""CREATE TEMPORARY TABLE {name} (
  `key` STRING,
  `value` BYTES,
  `topic` STRING METADATA VIRTUAL,
  `partition` INT METADATA VIRTUAL,
  `offset` BIGINT METADATA VIRTUAL
) WITH (
  {_with_clause(options)}
)"""
        )
        return self.t_env.to_data_stream(self.t_env.from_path(name))

    def _sink_table(self, topic: str) -> str:
        name = self._table_name(topic, "sink")
        options = {
            "connector": "kafka",
            "topic": topic,
            "properties.bootstrap.servers": self.bootstrap,
            "key.format": "raw",
            "key.fields": "key",
            "value.format": "raw",
            "value.fields-include": "EXCEPT_KEY",
            "sink.delivery-guarantee": self.delivery,
        }
        if self.delivery == EXACTLY_ONCE:
            # Each exactly-once sink needs its own prefix, stable across restarts.
            options["sink.transactional-id-prefix"] = f"{self.group_id}-{name}"
            options["properties.transaction.timeout.ms"] = str(TRANSACTION_TIMEOUT_MS)
        self.t_env.execute_sql(
            f"""CREATE TEMPORARY TABLE {name} (
  `key` STRING,
  `value` BYTES
) WITH (
  {_with_clause(options)}
)"""
        )
        return name

    def sink(self, topic: str, records: DataStream) -> None:
        """Write a stream of RECORD_OUT rows to `topic`, the key field as message key."""
        self._statements.add_insert(self._sink_table(topic), self.t_env.from_data_stream(records))

    def sink_routed(self, records: DataStream, topics: dict[str, str]) -> None:
        """Write ROUTED_OUT rows to the topic named by their `output` field (topics maps
        output -> topic). The routing runs in SQL, so it costs no Python operator."""
        routed = self.t_env.from_data_stream(records)
        for output, topic in topics.items():
            self._statements.add_insert(
                self._sink_table(topic), routed.where(col("output") == output).select(col("key"), col("value"))
            )

    def execute(self, job_name: str, detached: bool = False):
        """Run sources, functions and sinks as one job: wait for its JobExecutionResult, or
        with `detached` return its JobClient at once (for jobs that run until cancelled)."""
        self._statements.attach_as_datastream()
        return self.env.execute_async(job_name) if detached else self.env.execute(job_name)
