"""The records rtm writes to its output topics, one type per output (docs/CONTRACTS.md).

The engine builds them, the job encodes them, delivery and the decisions API decode them,
and `sql/tables.sql.j2` declares their fields for Flink SQL (tests/unit/test_records.py
holds that file and these types together). A Struct encodes its fields in the order
declared here, every field present (null when unset): that order and presence is the
JSON on the topics, so a change here is a contract change.

A new field gets a default (these are keyword-only, so it can go anywhere): records
written before it still decode. `gc=False`: a record never holds a reference cycle, so the
cyclic collector need not track it (one per trigger: cheaper to make).

Not here: `rtm.late` carries the late event byte for byte, as it arrived (rtm.events.Event
reads it).
"""

from typing import Annotated, Any, Literal

import msgspec

class Trigger(msgspec.Struct, kw_only=True, gc=False):
    """`rtm.triggers`: one completed match (docs/CONTRACTS.md, "Trigger"); built by rtm.triggers.make_trigger."""

    trigger_id: Annotated[str, msgspec.Meta(min_length=1)]
    campaign_id: str
    campaign_version: int
    user_key: Annotated[str, msgspec.Meta(min_length=1)]
    user_id: str | None
    anonymous_id: str | None
    channel: str
    endpoint: str
    message: str
    data: Any
    matched_event_ids: list[str]
    event_time: int
    emitted_at: int | None = None  # wall time at emission, set by the job as it leaves; null in a backtest
    holdout: bool
    variant: str | None = None  # the A/B variant (rtm.variants); null without variants and in the holdout
    scheduled_for: int | None = None  # held for the send window: the event time it left (rtm.send_windows)


class Suppressed(Trigger, kw_only=True, gc=False):
    """`rtm.suppressed`: a trigger the policy's channel caps held back (docs/CONTRACTS.md,
    "Suppressed"): the trigger's fields, then why; built by rtm.arbitration.suppressed."""

    suppressed_reason: str  # the cap it would have broken, e.g. "cap popup 1 per session"


class Conversion(msgspec.Struct, kw_only=True, gc=False):
    """`rtm.conversions`: a campaign's goal reached after one of its triggers (docs/CONTRACTS.md,
    "Conversion"); built by rtm.goals.record."""

    trigger_id: str
    campaign_id: str
    variant: str | None
    holdout: bool
    user_key: str
    user_id: str | None
    anonymous_id: str | None
    event_id: str  # the event that reached the goal
    event_type: str
    event_time: int
    trigger_time: int
    latency_ms: int  # event_time - trigger_time


class SessionRecord(msgspec.Struct, kw_only=True, gc=False):
    """`rtm.sessions`: a session opened or ended (docs/CONTRACTS.md, "Session"); built by rtm.sessions.record."""

    kind: Literal["session_start", "session_end"]
    session_id: str
    user_key: str
    user_id: str | None
    anonymous_id: str | None
    index: int
    start: int
    end: int | None  # null on session_start
    event_count: int
    pages: int
    platform: str | None


class DeadLetter(msgspec.Struct, kw_only=True, gc=False, omit_defaults=True):
    """`rtm.dlq`: a record that could not be used, as it was (docs/CONTRACTS.md, "Dead letters");
    built by rtm.dlq.dead_letter. The JVM writes the same JSON (io.rtm.flink.DeadLetters)."""

    reason: str
    topic: str
    partition: int
    offset: int
    key: str | None
    value_base64: str | None
    # The start of the value as text, for people reading the topic; absent for a tombstone.
    value_preview: str | None = None
