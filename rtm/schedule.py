"""What falls due for one user, and when (docs/CONTRACTS.md, "Time").

Four kinds of item fall due: a campaign's absence deadline, a held trigger's release (its
send window opens), the end of the open session (its last event plus the gap), and the
user's expiry (idle too long). The engine scans
the campaigns for absence deadlines once per call (`absence_deadlines`) and keeps that
map up to date as matches change; the session end and the expiry are read off the state.
"""

from collections.abc import Callable
from enum import IntEnum
from typing import Any

from rtm.state import UserState


class Due(IntEnum):
    """A kind of item; items due at the same time are settled in this order."""

    ABSENCE = 1  # no absence event came in time: the match completes
    RELEASE = 2  # a held trigger's send window opens: it leaves
    SESSION_END = 3  # the session gap passed: the session closes
    EXPIRY = 4  # idle too long: the user is forgotten, caps and first-seen included


# The members as module names: an Enum attribute lookup costs ~0.1 us in Python 3.11.
ABSENCE, RELEASE, SESSION_END, EXPIRY = Due


def absence_deadlines(user: UserState) -> dict[str, int]:
    """Campaign id -> deadline, for every match waiting on its absence."""
    return {cid: p.run.deadline for cid, p in user.progress.items()
            if p.run is not None and p.run.deadline is not None}


def _by_id(campaign_id: str) -> str:
    return campaign_id


def nothing_due(user: UserState, deadlines: dict[str, int], now: int, session_gap_ms: int,
                idle_expiry_ms: int) -> bool:
    """Whether every item falls due after `now` (next_due's time > now), without its scan or
    its ranking: the common case of an event in an open session. False also when the
    session is closed (the expiry is then next_due's answer, found by the scan)."""
    session, held = user.session, user.held
    return (session is not None and now < session.last + session_gap_ms and now < user.last_seen + idle_expiry_ms
            and (not held or now < held[0].release) and (not deadlines or now < min(deadlines.values())))


def next_due(user: UserState, deadlines: dict[str, int], session_gap_ms: int, idle_expiry_ms: int,
             rank: Callable[[str], Any] = _by_id) -> tuple[int, Due, str]:
    """The earliest item: (time, kind, campaign id or ""); of deadlines due at the same
    time, the campaign of the lowest `rank` (the engine's: priority, then id)."""
    # Plain loops and comparisons: this runs at least twice per call, min()/max() cost more.
    expiry = user.last_seen + idle_expiry_ms
    due_at = due_cid = None
    for cid, at in deadlines.items():
        if due_at is None or at < due_at or (at == due_at and rank(cid) < rank(due_cid)):
            due_at, due_cid = at, cid
        if at > expiry:
            expiry = at  # a user is never forgotten while a deadline is pending
    kind = ABSENCE
    held = user.held
    if held:  # in release order: the first is next
        release = held[0].release
        if release > expiry:
            expiry = release
        if due_at is None or release < due_at:
            due_at, due_cid, kind = release, held[0].campaign_id, RELEASE
    session = user.session
    if session is not None:
        end = session.last + session_gap_ms
        if due_at is None or end < due_at:
            return (end, SESSION_END, "") if end <= expiry else (expiry, EXPIRY, "")
    if due_at is None:
        return expiry, EXPIRY, ""
    return due_at, kind, due_cid
