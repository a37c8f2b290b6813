"""Turning raw Kafka records into events; what cannot be an event becomes a dead letter."""

from pyflink.common import Row, Types
from pyflink.datastream import OutputTag, ProcessFunction

from jobs.kafka_io import RECORD_OUT, record_out
from rtm.dlq import dead_letter
from rtm.events import InvalidEvent, parse_event

# An event that passed validation, with its user key and event time pulled out so that
# keying and timestamps need no second parse; `raw` is the record value unchanged.
PARSED_EVENT = Types.ROW_NAMED(
    ["user_key", "ts", "raw"], [Types.STRING(), Types.LONG(), Types.PRIMITIVE_ARRAY(Types.BYTE())]
)
DEAD_LETTERS = OutputTag("dead-letters", RECORD_OUT)


class ParseEvents(ProcessFunction):
    """Valid events go on as PARSED_EVENT rows; all else to the DEAD_LETTERS side output."""

    def open(self, runtime_context):
        self._dead_letters = runtime_context.get_metrics_group().counter("dead_letters")

    def process_element(self, record, ctx):
        if record.value is None:
            yield self._refuse(record, "tombstone (null value) on the events topic: events always carry a value")
            return
        try:
            event = parse_event(record.value)
        except InvalidEvent as err:
            yield self._refuse(record, str(err))
            return
        yield Row(user_key=event.key, ts=event.ts, raw=record.value)

    def _refuse(self, record, reason):
        self._dead_letters.inc()
        letter = dead_letter(
            reason,
            topic=record.topic,
            partition=record.partition,
            offset=record.offset,
            key=record.key,
            value=record.value,
        )
        return DEAD_LETTERS, record_out(record.key, letter)
