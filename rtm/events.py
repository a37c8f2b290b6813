"""The event and profile contracts (docs/CONTRACTS.md, "Event", "Profile"): parse and validate raw bytes.

Runs once per event, so it leans on msgspec's typed JSON decoder and does the few
checks the decoder cannot express (time normalisation, the user key) by hand.
"""

from datetime import UTC, datetime, timedelta
from typing import Any

import msgspec

# Epoch millis below this are 1973: almost surely epoch *seconds* sent by mistake.
_MIN_EPOCH_MS = 100_000_000_000
# The end of the year 9999: the last instant a calendar (and an ISO-8601 string) can name;
# anything larger is garbage that would overflow the state's 64-bit integers downstream.
_MAX_EPOCH_MS = 253_402_300_799_999
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
# Events feed conditions, templates and bound fields in keyed state: a payload this big is a
# mistake upstream (a page's HTML, an image), not a marketing signal.
MAX_EVENT_BYTES = 64 * 1024
_MS = timedelta(milliseconds=1)


def user_key(user_id: str | None, anonymous_id: str | None) -> str | None:
    """The user key (docs/CONTRACTS.md, "Event"): user_id when present, else anonymous_id.

    The JVM keys events by the same rule (io.rtm.flink.Inputs); tests/integration/test_kafka_io.py
    holds the two together.
    """
    return user_id or anonymous_id


class InvalidEvent(ValueError):
    """A record that breaks the event contract; the message is the reason (for the DLQ)."""


class InvalidProfile(ValueError):
    """A profile record that breaks the profile contract; the message is the reason."""


class Event(msgspec.Struct, kw_only=True):
    event_id: str
    type: str
    ts: int | str  # epoch millis after parse_event()
    user_id: str | None = None
    anonymous_id: str | None = None
    params: dict[str, Any] = {}
    context: dict[str, Any] = {}

    @property
    def key(self) -> str:
        """The user key (parse_event makes sure there is one)."""
        return user_key(self.user_id, self.anonymous_id)  # type: ignore[return-value]


class Profile(msgspec.Struct, kw_only=True):
    user_id: str
    segments: list[str] = []
    attributes: dict[str, Any] = {}
    updated_at: str | None = None


_event_decoder = msgspec.json.Decoder(Event)
_profile_decoder = msgspec.json.Decoder(Profile)


def parse_ts(value: int | str) -> int:
    """Epoch millis from epoch millis or an ISO-8601 string with a UTC offset."""
    if isinstance(value, str):
        try:
            parsed = datetime.fromisoformat(value)
        except ValueError:
            raise InvalidEvent(f"ts {value!r} is not ISO-8601 (e.g. 2026-11-25T13:45:00Z) nor epoch millis") from None
        if parsed.tzinfo is None:
            raise InvalidEvent(f"ts {value!r} has no UTC offset: add Z or +hh:mm")
        return (parsed - _EPOCH) // _MS  # exact, unlike float timestamp()
    if value < _MIN_EPOCH_MS:
        raise InvalidEvent(f"ts {value} looks like epoch seconds: send epoch milliseconds")
    if value > _MAX_EPOCH_MS:
        raise InvalidEvent(f"ts {value} is after the year 9999: send epoch milliseconds")
    return value


def _decode(decoder: msgspec.json.Decoder, raw: bytes | str, error: type[ValueError], what: str) -> Any:
    try:
        return decoder.decode(raw)
    except msgspec.ValidationError as err:
        raise error(f"{what} does not match the contract: {err}") from None
    except msgspec.DecodeError as err:
        raise error(f"not JSON: {err}") from None
    except RecursionError:
        raise error(f"{what} is nested too deep to decode: keep params and attributes a few levels deep") from None


def parse_event(raw: bytes | str) -> Event:
    """Decode one JSON event; raises InvalidEvent saying what is wrong."""
    if len(raw) > MAX_EVENT_BYTES:
        raise InvalidEvent(f"event too large: {len(raw)} bytes, the limit is {MAX_EVENT_BYTES}; "
                           "send references (ids, URLs) instead of content")
    event = _decode(_event_decoder, raw, InvalidEvent, "event")
    if not event.event_id:
        raise InvalidEvent("event_id is empty")
    if not event.type:
        raise InvalidEvent("type is empty")
    if not event.key:
        raise InvalidEvent("neither user_id nor anonymous_id is set: one is required (it is the user key)")
    ts = event.ts
    if type(ts) is not int or not _MIN_EPOCH_MS <= ts <= _MAX_EPOCH_MS:  # parse_ts's checks, inlined when they pass
        event.ts = parse_ts(ts)
    return event


def parse_profile(raw: bytes | str | None) -> dict[str, Any] | None:
    """Decode one profile; None (a tombstone) gives None. Raises InvalidProfile."""
    if raw is None:
        return None
    profile = _decode(_profile_decoder, raw, InvalidProfile, "profile")
    if not profile.user_id:
        raise InvalidProfile("user_id is empty")
    return msgspec.structs.asdict(profile)


def event_dict(event: Event) -> dict[str, Any]:
    """The event as conditions and templates see it."""
    return msgspec.structs.asdict(event)
