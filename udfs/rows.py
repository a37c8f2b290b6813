"""The rows that rtm's Python functions exchange with the JVM side of a job (rtm-flink.jar).

Their types are declared once, in Java (io.rtm.flink.Inputs and RoutedRecords):
  input  Row(kind, ts, key, value, topic, partition, offset): a Kafka record as read, with
         its kind and event time; value None is a tombstone
  routed Row(output, key, value): `value` to the topic of `output` under message key `key`
"""

from pyflink.common import Row

from rtm.dlq import dead_letter

# Input kinds (io.rtm.flink.Inputs): events are keyed by the user key in their payload,
# profiles by their message key; campaign records are broadcast as they are. END marks
# the end of a bounded input (its ts: the largest event time the input held).
EVENT, PROFILE, CAMPAIGN, END = "event", "profile", "campaign", "end"
# The outputs a routed row names, each written to its topic (docs/CONTRACTS.md, "Topics").
# Every record leaves on the main output as a routed row: PyFlink 2.3 drops side outputs
# yielded from on_timer of a KeyedBroadcastProcessFunction.
TRIGGERS, SESSIONS, CONVERSIONS, LATE = "triggers", "sessions", "conversions", "late"
DLQ = "dlq"  # dead letters; the JVM routes its own to the same name (io.rtm.flink.DeadLetters.OUTPUT)


def routed_out(output: str, key: str | None, value: bytes | None) -> Row:
    """A routed row: `value` to the topic of `output`, under message key `key`."""
    return Row(output, key, value)  # positional: the fields of RoutedRecords.ROUTED, in order


def refuse(record, reason: str) -> Row:
    """The routed row that sends `record` (an input row) to the DLQ, as it was read."""
    letter = dead_letter(
        reason, topic=record.topic, partition=record.partition, offset=record.offset, key=record.key, value=record.value
    )
    return routed_out(DLQ, record.key, letter)
