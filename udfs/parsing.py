"""Turning raw Kafka records into user inputs; what cannot be used becomes a dead letter.

Events and profiles leave as USER_INPUT rows, so they can be unioned and keyed by user
into one operator. `raw` is the record value unchanged; the keyed function parses it
again (msgspec: about a microsecond) rather than pickling a parsed object across the
network shuffle.
"""

import time

from pyflink.common import Row, Types
from pyflink.common.watermark_strategy import TimestampAssigner
from pyflink.datastream import OutputTag, ProcessFunction

from jobs.kafka_io import ROUTED_OUT, routed_out
from rtm.dlq import dead_letter
from rtm.events import InvalidEvent, InvalidProfile, parse_event, parse_profile

USER_INPUT = Types.ROW_NAMED(
    ["user_key", "is_profile", "ts", "raw"],
    [Types.STRING(), Types.BOOLEAN(), Types.LONG(), Types.PRIMITIVE_ARRAY(Types.BYTE())],
)
DEAD_LETTERS = OutputTag("dead-letters", ROUTED_OUT)
DLQ = "dlq"  # the output name of dead letters


def refuse(record, reason: str):
    """The ROUTED_OUT row that sends `record` (a RECORD_IN row) to the DLQ."""
    letter = dead_letter(
        reason, topic=record.topic, partition=record.partition, offset=record.offset, key=record.key, value=record.value
    )
    return routed_out(DLQ, record.key, letter)


class ParseEvents(ProcessFunction):
    """Valid events go on as USER_INPUT rows (ts = event time); all else to DEAD_LETTERS."""

    def open(self, runtime_context):
        self._dead_letters = runtime_context.get_metrics_group().counter("dead_letters")

    def process_element(self, record, ctx):
        if record.value is None:
            reason = "tombstone (null value) on the events topic: events always carry a value"
        else:
            try:
                event = parse_event(record.value)
            except InvalidEvent as err:
                reason = str(err)
            else:
                yield Row(user_key=event.key, is_profile=False, ts=event.ts, raw=record.value)
                return
        self._dead_letters.inc()
        yield DEAD_LETTERS, refuse(record, reason)


class ParseProfiles(ProcessFunction):
    """Profiles (key = user_id; a tombstone removes one) as USER_INPUT rows; bad ones to DLQ."""

    def open(self, runtime_context):
        self._dead_letters = runtime_context.get_metrics_group().counter("dead_letters")

    def process_element(self, record, ctx):
        if not record.key:
            reason = "profile without a message key: the key must be the user_id"
        else:
            try:
                profile = parse_profile(record.value)
            except InvalidProfile as err:
                reason = str(err)
            else:
                if profile is None or profile["user_id"] == record.key:
                    yield Row(user_key=record.key, is_profile=True, ts=0, raw=record.value)
                    return
                reason = f"profile user_id {profile['user_id']!r} differs from its message key {record.key!r}"
        self._dead_letters.inc()
        yield DEAD_LETTERS, refuse(record, reason)


class EventTime(TimestampAssigner):
    """A USER_INPUT event's time is its `ts` field, never the Kafka record's timestamp."""

    def extract_timestamp(self, value, record_timestamp) -> int:
        return value.ts


class WallClock(TimestampAssigner):
    """Slow inputs (profiles, campaigns) carry no event time: stamp them with wall time, so
    their watermark never holds the events' back (and they go idle when quiet)."""

    def extract_timestamp(self, value, record_timestamp) -> int:
        return time.time_ns() // 1_000_000
