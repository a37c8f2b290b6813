"""Campaign limits applied to one user's standing: the cap rules, in one place.

`limits.max` per `per` (sliding), or ever; `cooldown` between triggers; `reenter: false`
(at most one completion ever); and `audience.exclude`, which mutes a campaign for the
rest of a session. A match may start only if it could still fire; a completed match
fires only if, at its completion time, it still may.
"""

from rtm.campaigns import Limits
from rtm.state import Progress


def may_start(limits: Limits, progress: Progress | None, session: int) -> bool:
    """Whether a new partial match may start in session number `session`."""
    if progress is None:
        return True
    cap = limits.lifetime_cap
    return progress.muted != session and (cap is None or progress.fired < cap)


def may_fire(limits: Limits, progress: Progress, ts: int, session: int) -> bool:
    """Whether a match completed at `ts` fires (muting, lifetime cap, cooldown, cap per period)."""
    if not may_start(limits, progress, session):
        return False
    recent = progress.recent
    if limits.cooldown is not None and recent and ts - recent[-1] < limits.cooldown:
        return False
    if limits.per is None:
        return True
    since, count = ts - limits.per, 0
    for t in recent:
        count += t > since
    return count < limits.max


def count_completion(limits: Limits, progress: Progress, ts: int) -> None:
    progress.fired += 1
    keep = limits.memory_ms
    if keep:
        progress.recent = [t for t in progress.recent if t > ts - keep] + [ts]


def still_counts(limits: Limits, progress: Progress, open_session: int | None, oldest_next: int) -> bool:
    """Whether a standing without a partial match can still change an outcome.

    `open_session` is the open session's number (None if none is open); `oldest_next` the
    earliest time an event may still be applied at.
    """
    if progress.muted == open_session or (limits.lifetime_cap is not None and progress.fired > 0):
        return True
    since = oldest_next - limits.memory_ms
    for t in progress.recent:
        if t > since:
            return True
    return False
