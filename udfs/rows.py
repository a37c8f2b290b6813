"""The rows that rtm's Python functions exchange with the JVM side of a job (rtm-flink.jar).

Their types are declared once, in Java (io.rtm.flink.Inputs and RoutedRecords):
  input  (kind, ts, key, value, topic, partition, offset): a Kafka record as read, with
         its kind and event time; value None is a tombstone. It arrives framed in one
         byte array (Inputs.frame), which `read_input` reads.
  routed (output, key, value): `value` to the topic of `output` under message key `key`,
         framed in one byte array too (RoutedRecords.frame), which `routed_out` writes
"""

import struct

import msgspec

from rtm.dlq import dead_letter

# Input kinds (io.rtm.flink.Inputs): events are keyed by the user key in their payload,
# profiles by their message key; campaign records are broadcast as they are. END marks
# the end of a bounded input (its ts: the largest event time the input held).
EVENT, PROFILE, CAMPAIGN, END = "event", "profile", "campaign", "end"
# The outputs a routed record names, each written to its topic (docs/CONTRACTS.md, "Topics").
# Every record leaves the engine on its one output as a routed record; the sink routes it.
TRIGGERS, SESSIONS, CONVERSIONS, LATE = "triggers", "sessions", "conversions", "late"
SUPPRESSED = "suppressed"  # triggers over a channel cap of the policy (rtm.arbitration)
DLQ = "dlq"  # dead letters; the JVM routes its own to the same name (io.rtm.flink.DeadLetters.OUTPUT)


_KINDS = (EVENT, PROFILE, CAMPAIGN, END)  # by code: io.rtm.flink.Inputs.KIND_CODES
# kind code, ts, partition, offset, then the lengths of key, topic and value (-1: null)
_FRAME_HEADER = struct.Struct(">bqiqiii")


class InputRecord(msgspec.Struct, gc=False):
    kind: str
    ts: int
    key: str | None
    value: bytes | None  # None: a tombstone
    topic: str | None
    partition: int | None
    offset: int | None


def read_input(frame: bytes) -> InputRecord:
    """The input record in a frame of io.rtm.flink.Inputs.frame."""
    kind, ts, partition, offset, key_size, topic_size, value_size = _FRAME_HEADER.unpack_from(frame)
    start = _FRAME_HEADER.size
    key = topic = value = None
    if key_size >= 0:
        key = frame[start:start + key_size].decode()
        start += key_size
    if topic_size >= 0:
        topic = frame[start:start + topic_size].decode()
        start += topic_size
    if value_size >= 0:
        value = frame[start:start + value_size]
    return InputRecord(_KINDS[kind], ts, key, value, topic, None if partition < 0 else partition,
                       None if offset < 0 else offset)


_SIZE = struct.Struct(">i")
_NULL = _SIZE.pack(-1)
_OUTPUT_PREFIXES: dict[str, bytes] = {}


def routed_out(output: str, key: str | None, value: bytes | None) -> bytes:
    """A routed record: `value` to the topic of `output`, under message key `key`, framed as
    io.rtm.flink.RoutedRecords.frame reads it."""
    prefix = _OUTPUT_PREFIXES.get(output)
    if prefix is None:
        name = output.encode()
        prefix = _OUTPUT_PREFIXES[output] = bytes([len(name)]) + name
    if key is None:
        key_part = _NULL
    else:
        encoded = key.encode()
        key_part = _SIZE.pack(len(encoded)) + encoded
    return b"".join((prefix, key_part, _NULL if value is None else _SIZE.pack(len(value)), value or b""))


class RoutedRecord(msgspec.Struct, gc=False):
    output: str
    key: str | None
    value: bytes | None


def read_routed(frame: bytes) -> RoutedRecord:
    """The routed record in a frame of `routed_out` (or of the JVM's dead letters)."""
    start = 1 + frame[0]
    output = frame[1:start].decode()
    (key_size,) = _SIZE.unpack_from(frame, start)
    start += _SIZE.size
    key = None
    if key_size >= 0:
        key = frame[start:start + key_size].decode()
        start += key_size
    (value_size,) = _SIZE.unpack_from(frame, start)
    start += _SIZE.size
    return RoutedRecord(output, key, None if value_size < 0 else frame[start:start + value_size])


def refuse(record: InputRecord, reason: str) -> bytes:
    """The routed record that sends `record` to the DLQ, as it was read."""
    letter = dead_letter(
        reason, topic=record.topic, partition=record.partition, offset=record.offset, key=record.key, value=record.value
    )
    return routed_out(DLQ, record.key, letter)
