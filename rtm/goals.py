"""Goals (campaigns/README.md, "Goals"): did the user convert after a trigger?

A campaign with `goal: {event, within, where}` remembers its latest trigger per user
(holdout ones too, which is what makes uplift honest: the control group converts or
not on its own). A later real event that matches the goal within `within` of the
trigger records one conversion (docs/CONTRACTS.md, "Conversion") and closes the goal;
a new trigger replaces the one remembered (the latest trigger gets the credit).
"""

from dataclasses import dataclass

from rtm.patterns import EventFilter
from rtm.records import Conversion
from rtm.state import GoalWait, UserState
from rtm.views import EventScope


@dataclass(frozen=True, slots=True)
class Goal:
    filter: EventFilter
    within: int  # ms after the trigger


def still_open(goal: Goal | None, wait: GoalWait, oldest_next: int) -> bool:
    """Whether an event still applied (at `oldest_next` or later) could reach the goal."""
    return goal is not None and wait.at + goal.within >= oldest_next


def reach(user: UserState, scope: EventScope, goals: dict[str, Goal], errors: list[str]) -> list[Conversion]:
    """The conversions this real event records (`goals`: campaign id -> goal)."""
    conversions = []
    ts = scope.ts
    for cid, progress in user.progress.items():
        wait = progress.goal
        if wait is None or ts <= wait.at:  # strictly after: a trigger's own event does not convert it
            continue
        goal = goals.get(cid)
        if goal is None or ts - wait.at > goal.within:
            progress.goal = None  # the goal is gone, or its time ran out
        elif goal.filter.matches(scope.type, False, scope, errors, "goal"):
            progress.goal = None
            conversions.append(record(cid, wait, user, scope))
    return conversions


def record(campaign_id: str, wait: GoalWait, user: UserState, scope: EventScope) -> Conversion:
    """A conversion for rtm.conversions."""
    return Conversion(trigger_id=wait.trigger_id, campaign_id=campaign_id, variant=wait.variant,
                      holdout=wait.holdout, user_key=user.key, user_id=user.user_id,
                      anonymous_id=user.anonymous_id, event_id=scope.event_id, event_type=scope.type,
                      event_time=scope.ts, trigger_time=wait.at, latency_ms=scope.ts - wait.at)
