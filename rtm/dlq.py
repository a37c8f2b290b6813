"""Dead letters: what goes to rtm.dlq when a record cannot be used.

A dead letter keeps the original bytes exactly (base64) and says where the record
came from and why it was refused, so it can be fixed and replayed.
"""

import base64

import msgspec

from rtm.records import DeadLetter

PREVIEW_CHARS = 500


def dead_letter(reason: str, *, topic, partition, offset, key, value: bytes | None) -> bytes:
    """The JSON value of a dead letter for a record of `topic` at `partition`/`offset`."""
    return msgspec.json.encode(
        DeadLetter(
            reason=reason,
            topic=topic,
            partition=partition,
            offset=offset,
            key=key,
            value_base64=None if value is None else base64.b64encode(value).decode(),
            value_preview=None if value is None else value[:PREVIEW_CHARS].decode(errors="replace"),
        )
    )
