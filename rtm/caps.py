"""Campaign limits applied to one user's standing: the cap rules, in one place.

`limits.max` per `per` (sliding), per session (`per: session`: the open session, or the
latest one when a deadline completes a match after it closed), or ever; `cooldown` between triggers; `reenter: false`
(at most one completion ever); and `audience.exclude`, which mutes a campaign for the
rest of a session. A match may start only if it could still fire; a completed match
fires only if, at its completion time, it still may.
"""

from typing import TYPE_CHECKING

from rtm.state import Progress

if TYPE_CHECKING:  # rtm.campaigns imports rtm.arbitration, which counts its sends here
    from rtm.campaigns import Limits


def may_start(limits: "Limits", progress: Progress | None, session: int) -> bool:
    """Whether a new partial match may start in session number `session`."""
    if progress is None:
        return True
    cap = limits.lifetime_cap
    return progress.muted != session and (cap is None or progress.fired < cap)


def may_fire(limits: "Limits", progress: Progress, ts: int, session: int) -> bool:
    """Whether a match completed at `ts` fires (muting, lifetime cap, cooldown, cap per period)."""
    if not may_start(limits, progress, session):
        return False
    recent = progress.recent
    if limits.cooldown is not None and recent and ts - recent[-1] < limits.cooldown:
        return False
    if limits.per is None:
        return not limits.per_session or progress.fired_session != session or progress.fired_in_session < limits.max
    return count_since(recent, ts - limits.per) < limits.max


def count_since(times: list[int], since: int) -> int:
    """How many of `times` are later than `since`: a sliding-window cap's count (also the
    policy's, rtm.arbitration)."""
    count = 0
    for t in times:
        count += t > since
    return count


def remember(times: list[int], ts: int, keep_ms: int) -> list[int]:
    """`times` with `ts` added and those `keep_ms` or more before it forgotten."""
    return [t for t in times if t > ts - keep_ms] + [ts]


def count_completion(limits: "Limits", progress: Progress, ts: int, session: int) -> None:
    progress.fired += 1
    if limits.per_session:
        if progress.fired_session == session:
            progress.fired_in_session += 1
        else:
            progress.fired_session, progress.fired_in_session = session, 1
    keep = limits.memory_ms
    if keep:
        progress.recent = remember(progress.recent, ts, keep)


def still_counts(limits: "Limits", progress: Progress, open_session: int | None, oldest_next: int) -> bool:
    """Whether a standing without a partial match can still change an outcome.

    `open_session` is the open session's number (None if none is open); `oldest_next` the
    earliest time an event may still be applied at.
    """
    if progress.muted == open_session or (limits.lifetime_cap is not None and progress.fired > 0):
        return True
    if limits.per_session and progress.fired_session == open_session:
        return True
    since = oldest_next - limits.memory_ms
    for t in progress.recent:
        if t > since:
            return True
    return False
