"""What falls due for one user, and when (DESIGN.md, "Time").

Three kinds of item fall due: a campaign's absence deadline, the end of the open session
(its last event plus the gap), and the user's expiry (idle too long). The engine scans
the campaigns for absence deadlines once per call (`absence_deadlines`) and keeps that
map up to date as matches change; the session end and the expiry are read off the state.
"""

from enum import IntEnum

from rtm.state import UserState


class Due(IntEnum):
    """A kind of item; items due at the same time are settled in this order."""

    ABSENCE = 1  # no absence event came in time: the match completes
    SESSION_END = 2  # the session gap passed: the session closes
    EXPIRY = 3  # idle too long: the user is forgotten, caps and first-seen included


def absence_deadlines(user: UserState) -> dict[str, int]:
    """Campaign id -> deadline, for every match waiting on its absence."""
    return {cid: p.run.deadline for cid, p in user.progress.items()
            if p.run is not None and p.run.deadline is not None}


def next_due(user: UserState, deadlines: dict[str, int], session_gap_ms: int,
             idle_expiry_ms: int) -> tuple[int, Due, str]:
    """The earliest item: (time, kind, campaign id or "")."""
    # A user is never forgotten while a deadline is pending.
    expiry = user.last_seen + idle_expiry_ms
    due = None
    if deadlines:
        at, cid = min((at, cid) for cid, at in deadlines.items())
        due = (at, Due.ABSENCE, cid)
        expiry = max(expiry, max(deadlines.values()))
    session = user.session
    if session is not None:
        end = session.last + session_gap_ms
        if due is None or end < due[0]:
            due = (end, Due.SESSION_END, "")
    if due is None or expiry < due[0]:
        due = (expiry, Due.EXPIRY, "")
    return due
