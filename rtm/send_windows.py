"""Send windows (campaigns/README.md, "Send windows"): when a campaign's messages may go out.

A window is a time of day range in the user's time zone (a template, e.g. from the
profile). A trigger completed outside it is held in the user's state until the window
opens (rtm.engine releases it with `scheduled_for`, event_time unchanged), unless it
would wait longer than the window's `within`, or its channel is one that only makes
sense at once (a pop-up): then it is dropped, with the reason counted.
"""

import bisect
from collections.abc import Container, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, time, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import msgspec

from rtm.expressions import Scope, Template
from rtm.patterns import EventFilter
from rtm.records import Trigger
from rtm.state import Held, UserState

NEVER_HELD = frozenset({"popup"})  # shown while the user is there, or not at all
UTC = ZoneInfo("UTC")


@dataclass(frozen=True, slots=True)
class SendWindow:
    start: time  # local time of day the window opens...
    end: time  # ...and closes (before start: the window spans midnight)
    timezone: Template  # renders to an IANA name, e.g. Europe/Berlin
    within: int  # ms a held trigger may wait for the window


@lru_cache(maxsize=1024)
def zone(name: str) -> ZoneInfo | None:
    """The time zone of an IANA name, or None if there is no such zone."""
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return None


def opens_at(window: SendWindow, ts: int, tz: ZoneInfo) -> int | None:
    """None when `ts` (epoch ms) is inside the window; else when the window next opens."""
    local = datetime.fromtimestamp(ts / 1000, tz)
    now = local.time()
    start, end = window.start, window.end
    inside = start <= now < end if start < end else (now >= start or now < end)
    if inside:
        return None
    day = local.date() if now < start else local.date() + timedelta(days=1)
    return int(datetime.combine(day, start, tzinfo=tz).timestamp() * 1000)


def release_time(window: SendWindow, scope: Scope, ts: int, errors: list[str]) -> int | None:
    """When a trigger completed at `ts` may leave: None for now, else when the window opens.
    A time zone the template gives that does not exist is reported, and UTC used."""
    name = str(window.timezone.render(scope))
    tz = zone(name)
    if tz is None:
        errors.append(f"send_window.timezone {name!r} is not a time zone (an IANA name such as Europe/Berlin); "
                      f"UTC used")
        tz = UTC
    return opens_at(window, ts, tz)


def hold(user: UserState, release: int, campaign_id: str, trigger: Trigger) -> None:
    bisect.insort(user.held, Held(release, campaign_id, _encode(trigger)), key=_release_of)


def release_due(user: UserState, now: int, live: Container[str]) -> list[Trigger]:
    """The held triggers whose window opened by `now`, with `scheduled_for` set (those of
    campaigns no longer `live`, i.e. retired, are dropped)."""
    held, released = user.held, []
    while held and held[0].release <= now:
        entry = held.pop(0)
        if entry.campaign_id in live:
            trigger = _decode(entry.trigger)
            trigger.scheduled_for = entry.release
            released.append(trigger)
    return released


def cancel(user: UserState, exits: Mapping[str, Sequence[EventFilter]], scope: Scope, event_type: str,
           errors: list[str]) -> None:
    """Drop the held triggers whose campaign's `exit` (campaign id -> filters) matches this real event."""
    user.held = [h for h in user.held if not any(f.matches(event_type, False, scope, errors, "exit")
                                                 for f in exits.get(h.campaign_id, ()))]


def _release_of(held: Held) -> int:
    return held.release


_encode = msgspec.msgpack.Encoder().encode
_decode = msgspec.msgpack.Decoder(Trigger).decode
